//! The expression language: SQL predicates and values parsed with sqlparser, evaluated with arrow
//! kernels.
//!
//! One language serves the CLI `--where`, scans (row filtering and file pruning), constraints,
//! `UPDATE … SET col = value` and later MERGE conditions and values. It has three stages:
//!
//! 1. [`parse`] (predicates) and [`parse_value`] (values) turn SQL text into an [`Expression`], a
//!    small AST of our own; both accept the same grammar. Supported: column references (plain,
//!    `` `backquoted` `` or `"double-quoted"`, dotted `a.b` for struct fields), literals (integers,
//!    decimals, floats with exponents, `'strings'`, `TRUE`/`FALSE`, `NULL`, `X'0A0B'`,
//!    `DATE '…'`, `TIMESTAMP '…'`, `TIMESTAMP_NTZ '…'`, unary minus on numbers),
//!    `= <> != < <= > >=`, `AND OR NOT`, `IS [NOT] NULL`, `[NOT] IN (…)`,
//!    `[NOT] BETWEEN … AND …` and parentheses; and the value constructs `+ - * / %`, unary `-`,
//!    `||`, `CASE [x] WHEN … THEN … [ELSE …] END`, `COALESCE(…)`, `UPPER(…)`, `LOWER(…)`,
//!    `TRIM(…)` and `CAST(… AS type)` (see [Value expressions](#value-expressions)). Anything
//!    else is an [`Error::InvalidArgument`] naming the construct.
//! 2. [`Expression::bind`] resolves columns against an Arrow schema (exact name first, then
//!    case-insensitively) and gives every literal the type of the operand it is compared with, so
//!    that comparisons run on two values of one Arrow type. The result is a [`BoundExpression`].
//!    [`Expression::bind_value`] binds a value instead (optionally for a target column type) and
//!    gives a [`BoundValue`].
//! 3. [`BoundExpression::evaluate`] computes a `BooleanArray` over a `RecordBatch`;
//!    [`BoundExpression::filter`] keeps the rows where it is true. `crate::scan::prune` evaluates
//!    the same bound tree over file statistics instead of rows (computed values are "unknown"
//!    there, so files are kept). [`BoundValue::evaluate`] computes any value.
//!
//! # Semantics (invariants)
//!
//! - SQL three-valued logic: a comparison with NULL is NULL; `AND`/`OR` are Kleene (`FALSE AND
//!   NULL` is `FALSE`, `TRUE OR NULL` is `TRUE`); `NOT NULL` is NULL; `x IN (a, b)` is
//!   `x = a OR x = b` (so `1 IN (2, NULL)` is NULL and `1 NOT IN (2, NULL)` is NULL);
//!   `x BETWEEN a AND b` is `x >= a AND x <= b` and `NOT BETWEEN` is `x < a OR x > b`. A filter
//!   keeps a row only where the predicate is TRUE.
//! - Floats compare as Spark does: all NaNs are equal to each other and greater than every other
//!   value (including `+Infinity`), and `-0.0 = 0.0`. Arrow's comparison kernels use the IEEE
//!   754 total order, which agrees once float inputs are normalized (every NaN made the positive
//!   quiet NaN, `-0.0` made `0.0`); evaluation normalizes float operands, bound float literals
//!   are normalized when bound.
//! - Literal coercion is exact or fails: `300` against an `Int8` column, `1.5` against an integer
//!   column, `1.005` against `DECIMAL(5,2)` or `'abc'` against a date are invalid arguments naming
//!   the column. Numbers keep their decimal text until bound, so decimals are never routed
//!   through floats. Strings are parsed as the column's type (`'2024-01-01'` against a date,
//!   `'42'` against an integer); a number is never compared with a string column.
//! - The session time zone is UTC: `TIMESTAMP '2024-01-01 10:00:00'` (no offset) is 10:00 UTC,
//!   a string compared with a `timestamp` column is read the same way (RFC 3339 texts keep their
//!   offset), and a string compared with a `timestamp_ntz` column is wall-clock time and must not
//!   carry an offset. `DATE` literals compared with timestamps mean midnight.
//! - Errors never contain row values. Bind errors may quote column names and the SQL construct at
//!   fault, never the literal values.
//! - `Display` of an [`Expression`] prints SQL that [`parse`] reads back to the same tree (for
//!   `AND`/`OR` with at least two children; `AND`/`OR` of fewer children print as their meaning;
//!   `Negate` of a number literal prints as the negative number, which parses as a literal).
//!
//! # Value expressions
//!
//! Spark SQL semantics with ANSI mode off, except that nothing ever silently produces a wrong
//! number; the details (typing, promotion, NULLs, overflow, division by zero, CAST) are
//! documented on [`BoundValue`].

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Datum, Float32Array, Float64Array, Scalar,
    make_array, new_null_array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::kernels::cmp;
use arrow::compute::{
    and_kleene, filter_record_batch, is_not_null, is_null, not, or_kleene, prep_null_mask_filter,
};
use arrow::datatypes::{DataType, Field, Fields, Float32Type, Float64Type, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use sqlparser::ast as sql;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::partition::{
    BinaryText, DecimalText, Rounding, TextError, TextRules, array_from_text, binary_array,
    days_to_micros, format_date, format_timestamp_ntz, format_timestamp_utc, micros_to_unit,
    naive_micros, parse_date_days, parse_timestamp_text, timestamp_array,
};
use crate::{Error, Result};

mod cast;
mod value;

pub use value::{ArithmeticOp, BoundValue, CastType, Computed, FunctionName};

// ---------------------------------------------------------------------------------------------
// The AST
// ---------------------------------------------------------------------------------------------

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `<>` (also written `!=`)
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CompareOp {
    /// The operator `op'` with `NOT (a op b) == a op' b` for non-null `a` and `b`.
    #[must_use]
    pub fn negate(self) -> Self {
        match self {
            Self::Eq => Self::NotEq,
            Self::NotEq => Self::Eq,
            Self::Lt => Self::GtEq,
            Self::LtEq => Self::Gt,
            Self::Gt => Self::LtEq,
            Self::GtEq => Self::Lt,
        }
    }

    /// The operator `op'` with `a op b == b op' a`.
    #[must_use]
    pub fn flip(self) -> Self {
        match self {
            Self::Eq => Self::Eq,
            Self::NotEq => Self::NotEq,
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
        }
    }

    /// The SQL spelling.
    #[must_use]
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
        }
    }

    /// Applies the matching arrow comparison kernel (NULL in, NULL out; floats in total order).
    pub(crate) fn apply(
        self,
        left: &dyn Datum,
        right: &dyn Datum,
    ) -> Result<BooleanArray, ArrowError> {
        match self {
            Self::Eq => cmp::eq(left, right),
            Self::NotEq => cmp::neq(left, right),
            Self::Lt => cmp::lt(left, right),
            Self::LtEq => cmp::lt_eq(left, right),
            Self::Gt => cmp::gt(left, right),
            Self::GtEq => cmp::gt_eq(left, right),
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// A literal as written in a predicate, before binding gives it an Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `NULL`
    Null,
    /// `TRUE` or `FALSE`
    Boolean(bool),
    /// A number, kept as its exact decimal text (`42`, `-1.50`, `1e10`) until binding decides
    /// its type.
    Number(String),
    /// `'text'`
    String(String),
    /// `X'0A0B'`
    Binary(Vec<u8>),
    /// `DATE 'YYYY-MM-DD'`, as days since 1970-01-01.
    Date(i32),
    /// `TIMESTAMP '…'`, as microseconds since the epoch (an instant; no offset means UTC).
    Timestamp(i64),
    /// `TIMESTAMP_NTZ '…'`, as wall-clock microseconds since 1970-01-01 00:00.
    TimestampNtz(i64),
}

/// A predicate or value in the expression language. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// A column; more than one name is a path into nested structs (`a.b`).
    Column(Vec<String>),
    /// A literal.
    Literal(Literal),
    /// `left op right`
    Compare {
        /// The operator.
        op: CompareOp,
        /// The left operand.
        left: Box<Expression>,
        /// The right operand.
        right: Box<Expression>,
    },
    /// The conjunction of the children (`TRUE` when empty).
    And(Vec<Expression>),
    /// The disjunction of the children (`FALSE` when empty).
    Or(Vec<Expression>),
    /// `NOT expr`
    Not(Box<Expression>),
    /// `expr IS [NOT] NULL`
    IsNull {
        /// The operand.
        expr: Box<Expression>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `expr [NOT] IN (list…)`
    InList {
        /// The operand.
        expr: Box<Expression>,
        /// The candidates (at least one when parsed).
        list: Vec<Expression>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `expr [NOT] BETWEEN low AND high`
    Between {
        /// The operand.
        expr: Box<Expression>,
        /// The lower bound (inclusive).
        low: Box<Expression>,
        /// The upper bound (inclusive).
        high: Box<Expression>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `left op right` on numbers.
    Arithmetic {
        /// The operator.
        op: ArithmeticOp,
        /// The left operand.
        left: Box<Expression>,
        /// The right operand.
        right: Box<Expression>,
    },
    /// Unary minus, `-expr`. ([`parse`] reads `-` before a number literal as part of the literal.)
    Negate(Box<Expression>),
    /// `left || right`: string concatenation.
    Concat {
        /// The left operand.
        left: Box<Expression>,
        /// The right operand.
        right: Box<Expression>,
    },
    /// `CASE WHEN condition THEN value … [ELSE value] END`. A simple `CASE x WHEN v THEN …` is
    /// parsed as `CASE WHEN x = v THEN …`.
    Case {
        /// `(condition, value)` pairs in order (at least one when parsed).
        branches: Vec<(Expression, Expression)>,
        /// The `ELSE` value (NULL when absent).
        else_: Option<Box<Expression>>,
    },
    /// A function call.
    Function {
        /// The function.
        name: FunctionName,
        /// The arguments (as many as the function takes when parsed).
        args: Vec<Expression>,
    },
    /// `CAST(expr AS type)`.
    Cast {
        /// The value to convert.
        expr: Box<Expression>,
        /// The type to convert it to.
        to: CastType,
    },
}

/// Parses a SQL boolean expression (a `WHERE` clause without `WHERE`).
///
/// The grammar is the whole expression language (so `a + 1 > b` is a predicate); whether the
/// expression is boolean is checked by [`Expression::bind`].
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the text is not valid SQL, has trailing tokens, or uses a
/// construct outside the language (other functions, `LIKE`, subqueries, …); the message names
/// the construct.
pub fn parse(sql: &str) -> Result<Expression> {
    parse_as(sql, "predicate")
}

/// Parses a SQL value expression, such as the right-hand side of `UPDATE … SET col = value`.
///
/// Accepts the same grammar as [`parse`]; bind the result with [`Expression::bind_value`].
///
/// # Errors
///
/// As [`parse`].
pub fn parse_value(sql: &str) -> Result<Expression> {
    parse_as(sql, "value expression")
}

fn parse_as(sql: &str, what: &str) -> Result<Expression> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| Error::invalid(format!("cannot parse {what}: {e}")))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| Error::invalid(format!("cannot parse {what}: {e}")))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(Error::invalid(format!(
            "cannot parse {what}: unexpected `{}` after the expression",
            next.token
        )));
    }
    convert(&expr)
}

fn convert(expr: &sql::Expr) -> Result<Expression> {
    use sql::Expr as E;
    Ok(match expr {
        E::Identifier(ident) => Expression::Column(vec![ident.value.clone()]),
        E::CompoundIdentifier(idents) => {
            Expression::Column(idents.iter().map(|ident| ident.value.clone()).collect())
        }
        E::Value(value) => Expression::Literal(convert_value(&value.value)?),
        E::TypedString(typed) => Expression::Literal(convert_typed_string(typed)?),
        E::Nested(inner) => convert(inner)?,
        E::UnaryOp { op, expr: inner } => match op {
            sql::UnaryOperator::Not => Expression::Not(Box::new(convert(inner)?)),
            sql::UnaryOperator::Minus | sql::UnaryOperator::Plus => match convert(inner)? {
                // A sign before a number is part of the literal.
                Expression::Literal(Literal::Number(text)) => {
                    let text = if *op == sql::UnaryOperator::Plus {
                        text
                    } else if let Some(positive) = text.strip_prefix('-') {
                        positive.to_string()
                    } else {
                        format!("-{text}")
                    };
                    Expression::Literal(Literal::Number(text))
                }
                other if *op == sql::UnaryOperator::Plus => other,
                other => Expression::Negate(Box::new(other)),
            },
            other => {
                return Err(Error::invalid(format!(
                    "operator `{other}` is not supported"
                )));
            }
        },
        E::BinaryOp { left, op, right } => match op {
            sql::BinaryOperator::And => {
                let mut children = Vec::new();
                collect_chain(expr, &sql::BinaryOperator::And, &mut children)?;
                Expression::And(children)
            }
            sql::BinaryOperator::Or => {
                let mut children = Vec::new();
                collect_chain(expr, &sql::BinaryOperator::Or, &mut children)?;
                Expression::Or(children)
            }
            sql::BinaryOperator::StringConcat => Expression::Concat {
                left: Box::new(convert(left)?),
                right: Box::new(convert(right)?),
            },
            sql::BinaryOperator::Plus
            | sql::BinaryOperator::Minus
            | sql::BinaryOperator::Multiply
            | sql::BinaryOperator::Divide
            | sql::BinaryOperator::Modulo => Expression::Arithmetic {
                op: match op {
                    sql::BinaryOperator::Plus => ArithmeticOp::Add,
                    sql::BinaryOperator::Minus => ArithmeticOp::Subtract,
                    sql::BinaryOperator::Multiply => ArithmeticOp::Multiply,
                    sql::BinaryOperator::Divide => ArithmeticOp::Divide,
                    _ => ArithmeticOp::Modulo,
                },
                left: Box::new(convert(left)?),
                right: Box::new(convert(right)?),
            },
            _ => {
                let op = match op {
                    sql::BinaryOperator::Eq => CompareOp::Eq,
                    sql::BinaryOperator::NotEq => CompareOp::NotEq,
                    sql::BinaryOperator::Lt => CompareOp::Lt,
                    sql::BinaryOperator::LtEq => CompareOp::LtEq,
                    sql::BinaryOperator::Gt => CompareOp::Gt,
                    sql::BinaryOperator::GtEq => CompareOp::GtEq,
                    other => {
                        return Err(Error::invalid(format!(
                            "operator `{other}` is not supported"
                        )));
                    }
                };
                Expression::Compare {
                    op,
                    left: Box::new(convert(left)?),
                    right: Box::new(convert(right)?),
                }
            }
        },
        E::IsNull(inner) => Expression::IsNull {
            expr: Box::new(convert(inner)?),
            negated: false,
        },
        E::IsNotNull(inner) => Expression::IsNull {
            expr: Box::new(convert(inner)?),
            negated: true,
        },
        E::In {
            expr: inner,
            target,
            negated,
            ..
        } => match target {
            sql::InTarget::List(list) => {
                if list.is_empty() {
                    return Err(Error::invalid("IN needs at least one value"));
                }
                Expression::InList {
                    expr: Box::new(convert(inner)?),
                    list: list.iter().map(convert).collect::<Result<_>>()?,
                    negated: *negated,
                }
            }
            _ => return Err(Error::invalid("subqueries are not supported")),
        },
        E::Between {
            expr: inner,
            negated,
            low,
            high,
        } => Expression::Between {
            expr: Box::new(convert(inner)?),
            low: Box::new(convert(low)?),
            high: Box::new(convert(high)?),
            negated: *negated,
        },
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let operand = operand.as_deref().map(convert).transpose()?;
            let mut branches = Vec::with_capacity(conditions.len());
            for when in conditions {
                let condition = convert(&when.condition)?;
                let condition = match &operand {
                    Some(operand) => Expression::Compare {
                        op: CompareOp::Eq,
                        left: Box::new(operand.clone()),
                        right: Box::new(condition),
                    },
                    None => condition,
                };
                branches.push((condition, convert(&when.result)?));
            }
            if branches.is_empty() {
                return Err(Error::invalid("CASE needs at least one WHEN"));
            }
            Expression::Case {
                branches,
                else_: else_result
                    .as_deref()
                    .map(convert)
                    .transpose()?
                    .map(Box::new),
            }
        }
        E::Function(function) => value::convert_function(function)?,
        E::Trim {
            expr: inner,
            trim_where: None,
            trim_what: None,
            trim_characters: None,
        } => Expression::Function {
            name: FunctionName::Trim,
            args: vec![convert(inner)?],
        },
        E::Trim { .. } => {
            return Err(Error::invalid(
                "TRIM with BOTH, LEADING, TRAILING or characters to trim is not supported; use \
                 TRIM(value)",
            ));
        }
        E::Cast {
            kind: sql::CastKind::Cast,
            expr: inner,
            data_type,
            format: None,
        } => Expression::Cast {
            expr: Box::new(convert(inner)?),
            to: CastType::from_sql(data_type)?,
        },
        E::Cast { kind, .. } => {
            return Err(Error::invalid(match kind {
                sql::CastKind::Cast => "CAST … FORMAT is not supported".to_string(),
                sql::CastKind::DoubleColon => {
                    "`::` casts are not supported; use CAST(value AS type)".to_string()
                }
                other => format!("{other:?} is not supported; use CAST(value AS type)"),
            }));
        }
        E::Like { .. } | E::ILike { .. } | E::SimilarTo { .. } | E::RLike { .. } => {
            return Err(Error::invalid(
                "LIKE and pattern matching are not supported",
            ));
        }
        E::Subquery(_) | E::Exists { .. } => {
            return Err(Error::invalid("subqueries are not supported"));
        }
        other => return Err(Error::invalid(format!("`{other}` is not supported"))),
    })
}

/// Flattens `a AND b AND c` (left-nested binary operators, not parenthesized ones) into children.
fn collect_chain(
    expr: &sql::Expr,
    chain: &sql::BinaryOperator,
    out: &mut Vec<Expression>,
) -> Result<()> {
    match expr {
        sql::Expr::BinaryOp { left, op, right } if op == chain => {
            collect_chain(left, chain, out)?;
            collect_chain(right, chain, out)
        }
        other => {
            out.push(convert(other)?);
            Ok(())
        }
    }
}

fn convert_value(value: &sql::Value) -> Result<Literal> {
    use sql::Value as V;
    Ok(match value {
        V::Number(text, _) => Literal::Number(text.clone()),
        V::SingleQuotedString(text)
        | V::TripleSingleQuotedString(text)
        | V::EscapedStringLiteral(text)
        | V::UnicodeStringLiteral(text)
        | V::NationalStringLiteral(text) => Literal::String(text.clone()),
        V::HexStringLiteral(hex) => {
            Literal::Binary(decode_hex(hex).ok_or_else(|| Error::invalid("invalid hex literal"))?)
        }
        V::Boolean(value) => Literal::Boolean(*value),
        V::Null => Literal::Null,
        V::Placeholder(_) => {
            return Err(Error::invalid("placeholders are not supported"));
        }
        _ => return Err(Error::invalid("unsupported literal")),
    })
}

fn convert_typed_string(typed: &sql::TypedString) -> Result<Literal> {
    let Some(text) = typed.value.value.clone().into_string() else {
        return Err(Error::invalid("typed literals need a quoted string"));
    };
    match &typed.data_type {
        sql::DataType::Date => parse_date_days(&text)
            .map(Literal::Date)
            .ok_or_else(|| Error::invalid("invalid DATE literal: expected 'YYYY-MM-DD'")),
        sql::DataType::Timestamp(_, _) => {
            let parsed = parse_timestamp_text(&text).ok_or_else(|| {
                Error::invalid("invalid TIMESTAMP literal: expected 'YYYY-MM-DD[ HH:MM:SS[.ffffff]]' with an optional offset")
            })?;
            parsed
                .instant_micros(parsed.offset_seconds.unwrap_or(0))
                .map(Literal::Timestamp)
                .ok_or_else(|| {
                    Error::invalid("TIMESTAMP literal has more than microsecond precision")
                })
        }
        sql::DataType::TimestampNtz(_) => {
            let parsed = parse_timestamp_text(&text)
                .filter(|parsed| parsed.offset_seconds.is_none())
                .ok_or_else(|| {
                    Error::invalid("invalid TIMESTAMP_NTZ literal: expected 'YYYY-MM-DD[ HH:MM:SS[.ffffff]]' without an offset")
                })?;
            naive_micros(&parsed.naive)
                .map(Literal::TimestampNtz)
                .ok_or_else(|| {
                    Error::invalid("TIMESTAMP_NTZ literal has more than microsecond precision")
                })
        }
        other => Err(Error::invalid(format!(
            "typed literal `{other} '…'` is not supported"
        ))),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digits: Vec<u32> = hex.chars().map(|c| c.to_digit(16)).collect::<Option<_>>()?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => u8::try_from(high * 16 + low).ok(),
            _ => None,
        })
        .collect()
}

impl Expression {
    /// The top-level column names the expression references, in order of first appearance,
    /// without duplicates (for `a.b` this is `a`). Names are as written, not yet resolved.
    #[must_use]
    pub fn columns(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit_columns(&mut |path| {
            if let Some(first) = path.first()
                && !names.contains(first)
            {
                names.push(first.clone());
            }
        });
        names
    }

    fn visit_columns(&self, visit: &mut impl FnMut(&[String])) {
        match self {
            Self::Column(path) => visit(path),
            Self::Literal(_) => {}
            Self::Compare { left, right, .. } => {
                left.visit_columns(visit);
                right.visit_columns(visit);
            }
            Self::And(children) | Self::Or(children) => {
                for child in children {
                    child.visit_columns(visit);
                }
            }
            Self::Not(inner) | Self::IsNull { expr: inner, .. } => inner.visit_columns(visit),
            Self::InList { expr, list, .. } => {
                expr.visit_columns(visit);
                for item in list {
                    item.visit_columns(visit);
                }
            }
            Self::Between {
                expr, low, high, ..
            } => {
                expr.visit_columns(visit);
                low.visit_columns(visit);
                high.visit_columns(visit);
            }
            Self::Arithmetic { left, right, .. } | Self::Concat { left, right } => {
                left.visit_columns(visit);
                right.visit_columns(visit);
            }
            Self::Negate(inner) | Self::Cast { expr: inner, .. } => inner.visit_columns(visit),
            Self::Case { branches, else_ } => {
                for (condition, value) in branches {
                    condition.visit_columns(visit);
                    value.visit_columns(visit);
                }
                if let Some(else_) = else_ {
                    else_.visit_columns(visit);
                }
            }
            Self::Function { args, .. } => {
                for arg in args {
                    arg.visit_columns(visit);
                }
            }
        }
    }

    /// Binds the predicate to `schema`: resolves every column and types every literal.
    ///
    /// The result must be boolean: a comparison, a logical combination, a boolean column or a
    /// boolean (or NULL) literal.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an unknown or ambiguous column, a comparison between
    /// incompatible types (or of nested types), a literal that does not fit the column it is
    /// compared with, or a non-boolean predicate. Messages name the column, never the literal.
    pub fn bind(&self, schema: &Schema) -> Result<BoundExpression> {
        bind_boolean(self, schema)
    }

    /// Binds a value expression to `schema`. See [`BoundValue`] for the typing rules.
    ///
    /// With a `target` (the type of the column the value is stored in), literals take that type
    /// (exactly, as in comparisons) and the result is converted to it under Spark's
    /// store-assignment rules: any numeric type to any numeric type (an overflow is an error at
    /// evaluation), any atomic type to a string, dates and timestamps to each other, NULL to
    /// anything; other conversions need an explicit `CAST`. Without a target the value keeps its
    /// own type.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an unknown or ambiguous column, operands of the wrong type
    /// (`'a' * 2`, `UPPER` of a struct), a literal that does not fit, branches of incompatible
    /// types, an unsupported `CAST` or a value that cannot be stored in `target`. Messages name
    /// columns and constructs, never literal values.
    pub fn bind_value(&self, schema: &Schema, target: Option<&DataType>) -> Result<BoundValue> {
        value::bind_value(self, schema, target)
    }

    fn is_atom(&self) -> bool {
        matches!(self, Self::Column(_) | Self::Literal(_))
    }
}

// ---------------------------------------------------------------------------------------------
// Display: SQL that parses back to the same tree
// ---------------------------------------------------------------------------------------------

fn write_identifier(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    write!(f, "`{}`", name.replace('`', "``"))
}

fn write_operand(f: &mut fmt::Formatter<'_>, expr: &Expression) -> fmt::Result {
    if expr.is_atom() {
        write!(f, "{expr}")
    } else {
        write!(f, "({expr})")
    }
}

/// An operand of an arithmetic operator or `||`: like [`write_operand`], but a negative number
/// is parenthesized too (so `a - (-1)` never prints as `a - -1` and `(-1) * a` keeps its tree).
fn write_value_operand(f: &mut fmt::Formatter<'_>, expr: &Expression) -> fmt::Result {
    match expr {
        Expression::Literal(Literal::Number(text)) if text.starts_with('-') => {
            write!(f, "({expr})")
        }
        _ => write_operand(f, expr),
    }
}

fn write_chain(f: &mut fmt::Formatter<'_>, children: &[Expression], op: &str) -> fmt::Result {
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            write!(f, " {op} ")?;
        }
        write!(f, "({child})")?;
    }
    Ok(())
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Boolean(true) => f.write_str("TRUE"),
            Self::Boolean(false) => f.write_str("FALSE"),
            Self::Number(text) => f.write_str(text),
            Self::String(text) => write!(f, "'{}'", text.replace('\'', "''")),
            Self::Binary(bytes) => {
                f.write_str("X'")?;
                for byte in bytes {
                    write!(f, "{byte:02X}")?;
                }
                f.write_str("'")
            }
            Self::Date(days) => match format_date(*days) {
                Some(text) => write!(f, "DATE '{text}'"),
                None => f.write_str("DATE 'out of range'"),
            },
            Self::Timestamp(micros) => match format_timestamp_utc(*micros) {
                Some(text) => write!(f, "TIMESTAMP '{text}'"),
                None => f.write_str("TIMESTAMP 'out of range'"),
            },
            Self::TimestampNtz(micros) => match format_timestamp_ntz(*micros) {
                Some(text) => write!(f, "TIMESTAMP_NTZ '{text}'"),
                None => f.write_str("TIMESTAMP_NTZ 'out of range'"),
            },
        }
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Column(path) => {
                for (i, name) in path.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write_identifier(f, name)?;
                }
                Ok(())
            }
            Self::Literal(literal) => write!(f, "{literal}"),
            Self::Compare { op, left, right } => {
                write_operand(f, left)?;
                write!(f, " {op} ")?;
                write_operand(f, right)
            }
            Self::And(children) if children.is_empty() => f.write_str("TRUE"),
            Self::Or(children) if children.is_empty() => f.write_str("FALSE"),
            Self::And(children) => write_chain(f, children, "AND"),
            Self::Or(children) => write_chain(f, children, "OR"),
            Self::Not(inner) => write!(f, "NOT ({inner})"),
            Self::IsNull { expr, negated } => {
                write_operand(f, expr)?;
                f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
            }
            Self::InList {
                expr,
                list,
                negated,
            } => {
                write_operand(f, expr)?;
                f.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_operand(f, item)?;
                }
                f.write_str(")")
            }
            Self::Between {
                expr,
                low,
                high,
                negated,
            } => {
                write_operand(f, expr)?;
                f.write_str(if *negated {
                    " NOT BETWEEN "
                } else {
                    " BETWEEN "
                })?;
                write_operand(f, low)?;
                f.write_str(" AND ")?;
                write_operand(f, high)
            }
            Self::Arithmetic { op, left, right } => {
                write_value_operand(f, left)?;
                write!(f, " {op} ")?;
                write_value_operand(f, right)
            }
            Self::Negate(inner) => {
                f.write_str("-")?;
                write_value_operand(f, inner)
            }
            Self::Concat { left, right } => {
                write_value_operand(f, left)?;
                f.write_str(" || ")?;
                write_value_operand(f, right)
            }
            Self::Case { branches, else_ } => {
                f.write_str("CASE")?;
                for (condition, value) in branches {
                    f.write_str(" WHEN ")?;
                    write_operand(f, condition)?;
                    f.write_str(" THEN ")?;
                    write_operand(f, value)?;
                }
                if let Some(else_) = else_ {
                    f.write_str(" ELSE ")?;
                    write_operand(f, else_)?;
                }
                f.write_str(" END")
            }
            Self::Function { name, args } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_operand(f, arg)?;
                }
                f.write_str(")")
            }
            Self::Cast { expr, to } => {
                f.write_str("CAST(")?;
                write_operand(f, expr)?;
                write!(f, " AS {to})")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------------

/// A column resolved against a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundColumn {
    /// The field names from the top-level column down to the referenced field, spelled as in
    /// the schema.
    pub path: Vec<String>,
    /// The Arrow type of the referenced field.
    pub data_type: DataType,
}

impl BoundColumn {
    /// The dotted name (`a.b`), used in messages and as the key of nested statistics.
    #[must_use]
    pub fn name(&self) -> String {
        self.path.join(".")
    }
}

/// An [`Expression`] bound to a schema: columns resolved and literals typed.
///
/// `BETWEEN` is rewritten to `AND`/`OR` of comparisons while binding. Every `Compare` and
/// `InList` compares values of one Arrow type; float literals are normalized (see the
/// [module docs](self)).
#[derive(Debug, Clone)]
pub enum BoundExpression {
    /// A column.
    Column(BoundColumn),
    /// A typed literal.
    Literal(Scalar<ArrayRef>),
    /// `left op right`
    Compare {
        /// The operator.
        op: CompareOp,
        /// The left operand.
        left: Box<BoundExpression>,
        /// The right operand.
        right: Box<BoundExpression>,
    },
    /// Kleene conjunction (`TRUE` when empty).
    And(Vec<BoundExpression>),
    /// Kleene disjunction (`FALSE` when empty).
    Or(Vec<BoundExpression>),
    /// Negation (NULL stays NULL).
    Not(Box<BoundExpression>),
    /// `expr IS [NOT] NULL` (never NULL itself).
    IsNull {
        /// The operand.
        expr: Box<BoundExpression>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `expr [NOT] IN (list…)`, evaluated as `[NOT] (expr = item OR …)`.
    InList {
        /// The operand.
        expr: Box<BoundExpression>,
        /// The candidates, each of the operand's type.
        list: Vec<BoundExpression>,
        /// `NOT IN`.
        negated: bool,
    },
    /// A computed value: arithmetic, `||`, `CASE`, a function or a `CAST` (see [`BoundValue`]).
    /// Its inner structure is private; file pruning treats it as unknown.
    Computed(Box<Computed>),
}

/// An operand whose literal is not typed yet: its type comes from what it is compared with.
enum Operand {
    Bound(BoundExpression),
    Literal(Literal),
}

impl BoundExpression {
    /// The Arrow type of the value the expression produces.
    #[must_use]
    pub fn data_type(&self) -> DataType {
        match self {
            Self::Column(column) => column.data_type.clone(),
            Self::Literal(scalar) => scalar.get().0.data_type().clone(),
            Self::Computed(computed) => computed.data_type().clone(),
            _ => DataType::Boolean,
        }
    }

    /// The resolved top-level column names referenced, in order of first appearance, without
    /// duplicates (the columns a scan must read to evaluate the predicate).
    #[must_use]
    pub fn columns(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        self.visit_columns(&mut |column| {
            if let Some(first) = column.path.first()
                && !names.contains(first)
            {
                names.push(first.clone());
            }
        });
        names
    }

    fn visit_columns(&self, visit: &mut impl FnMut(&BoundColumn)) {
        match self {
            Self::Column(column) => visit(column),
            Self::Literal(_) => {}
            Self::Compare { left, right, .. } => {
                left.visit_columns(visit);
                right.visit_columns(visit);
            }
            Self::And(children) | Self::Or(children) => {
                for child in children {
                    child.visit_columns(visit);
                }
            }
            Self::Not(inner) | Self::IsNull { expr: inner, .. } => inner.visit_columns(visit),
            Self::InList { expr, list, .. } => {
                expr.visit_columns(visit);
                for item in list {
                    item.visit_columns(visit);
                }
            }
            Self::Computed(computed) => computed.visit_columns(visit),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Column(column) => format!("column `{}`", column.name()),
            Self::Literal(_) => "literal".to_string(),
            Self::Computed(computed) => computed.label().to_string(),
            _ => "boolean expression".to_string(),
        }
    }
}

fn bind_boolean(expr: &Expression, schema: &Schema) -> Result<BoundExpression> {
    match bind_operand(expr, schema)? {
        Operand::Literal(Literal::Null) => Ok(null_boolean()),
        Operand::Literal(Literal::Boolean(value)) => {
            Ok(literal_node(Arc::new(BooleanArray::from(vec![value])))?)
        }
        Operand::Literal(_) => Err(Error::invalid(
            "a predicate must be boolean, not a non-boolean literal",
        )),
        Operand::Bound(bound) => match bound.data_type() {
            DataType::Boolean => Ok(bound),
            other => Err(Error::invalid(format!(
                "a predicate must be boolean, but {} has type {other}",
                bound.describe()
            ))),
        },
    }
}

fn null_boolean() -> BoundExpression {
    BoundExpression::Literal(Scalar::new(new_null_array(&DataType::Boolean, 1)))
}

/// A literal node; the array must hold exactly one value (checked, so that a bug here is an
/// error rather than a panic in `Scalar::new`).
fn literal_node(array: ArrayRef) -> Result<BoundExpression> {
    if array.len() == 1 {
        Ok(BoundExpression::Literal(Scalar::new(array)))
    } else {
        Err(Error::invalid(format!(
            "a literal must hold exactly one value, not {}",
            array.len()
        )))
    }
}

fn bind_operand(expr: &Expression, schema: &Schema) -> Result<Operand> {
    Ok(Operand::Bound(match expr {
        Expression::Literal(literal) => return Ok(Operand::Literal(literal.clone())),
        Expression::Column(path) => BoundExpression::Column(resolve_column(schema, path)?),
        Expression::Compare { op, left, right } => bind_compare(
            *op,
            bind_operand(left, schema)?,
            bind_operand(right, schema)?,
        )?,
        Expression::And(children) => BoundExpression::And(
            children
                .iter()
                .map(|child| bind_boolean(child, schema))
                .collect::<Result<_>>()?,
        ),
        Expression::Or(children) => BoundExpression::Or(
            children
                .iter()
                .map(|child| bind_boolean(child, schema))
                .collect::<Result<_>>()?,
        ),
        Expression::Not(inner) => BoundExpression::Not(Box::new(bind_boolean(inner, schema)?)),
        Expression::IsNull { expr, negated } => BoundExpression::IsNull {
            expr: Box::new(match bind_operand(expr, schema)? {
                Operand::Bound(bound) => bound,
                Operand::Literal(literal) => literal_node(natural_literal(&literal)?)?,
            }),
            negated: *negated,
        },
        Expression::InList {
            expr,
            list,
            negated,
        } => bind_in_list(expr, list, *negated, schema)?,
        Expression::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let compare = |op, bound: &Expression| Expression::Compare {
                op,
                left: expr.clone(),
                right: Box::new(bound.clone()),
            };
            let rewritten = if *negated {
                Expression::Or(vec![
                    compare(CompareOp::Lt, low),
                    compare(CompareOp::Gt, high),
                ])
            } else {
                Expression::And(vec![
                    compare(CompareOp::GtEq, low),
                    compare(CompareOp::LtEq, high),
                ])
            };
            return bind_operand(&rewritten, schema);
        }
        Expression::Arithmetic { .. }
        | Expression::Negate(_)
        | Expression::Concat { .. }
        | Expression::Case { .. }
        | Expression::Function { .. }
        | Expression::Cast { .. } => value::bind_computed(expr, schema, None)?,
    }))
}

fn bind_in_list(
    expr: &Expression,
    list: &[Expression],
    negated: bool,
    schema: &Schema,
) -> Result<BoundExpression> {
    let operand = bind_operand(expr, schema)?;
    let bound = match operand {
        Operand::Literal(_) => {
            // A literal operand takes its type from each candidate in turn: rewrite to `=`s.
            let disjunction = Expression::Or(
                list.iter()
                    .map(|item| Expression::Compare {
                        op: CompareOp::Eq,
                        left: Box::new(expr.clone()),
                        right: Box::new(item.clone()),
                    })
                    .collect(),
            );
            bind_boolean(&disjunction, schema)?
        }
        Operand::Bound(operand) => {
            let data_type = comparison_type(&operand)?;
            if data_type == DataType::Null {
                return Ok(null_boolean());
            }
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                items.push(match bind_operand(item, schema)? {
                    Operand::Literal(literal) => {
                        literal_node(coerce_literal(&literal, &data_type, &operand.describe())?)?
                    }
                    // A value of the NULL type (a `void` column) is a NULL candidate.
                    Operand::Bound(item) if item.data_type() == DataType::Null => {
                        literal_node(new_null_array(&data_type, 1))?
                    }
                    Operand::Bound(item) => {
                        check_same_type(&operand, &item)?;
                        item
                    }
                });
            }
            return Ok(BoundExpression::InList {
                expr: Box::new(operand),
                list: items,
                negated,
            });
        }
    };
    Ok(if negated {
        BoundExpression::Not(Box::new(bound))
    } else {
        bound
    })
}

fn bind_compare(op: CompareOp, left: Operand, right: Operand) -> Result<BoundExpression> {
    let (left, right) = match (left, right) {
        (Operand::Bound(left), Operand::Bound(right)) => {
            // A computed operand (`a + 1`) is compared with a value of another numeric, date or
            // timestamp type after widening both; two plain columns must have one type.
            let (left, right) = if matches!(left, BoundExpression::Computed(_))
                || matches!(right, BoundExpression::Computed(_))
            {
                value::widen_pair(left, right)?
            } else {
                (left, right)
            };
            check_same_type(&left, &right)?;
            (left, right)
        }
        (Operand::Bound(bound), Operand::Literal(literal)) => {
            let data_type = comparison_type(&bound)?;
            let literal = coerce_literal(&literal, &data_type, &bound.describe())?;
            (bound, literal_node(literal)?)
        }
        (Operand::Literal(literal), Operand::Bound(bound)) => {
            let data_type = comparison_type(&bound)?;
            let literal = coerce_literal(&literal, &data_type, &bound.describe())?;
            (literal_node(literal)?, bound)
        }
        (Operand::Literal(left), Operand::Literal(right)) => {
            let data_type = common_literal_type(&left, &right);
            (
                literal_node(coerce_literal(&left, &data_type, "literal")?)?,
                literal_node(coerce_literal(&right, &data_type, "literal")?)?,
            )
        }
    };
    if left.data_type() == DataType::Null || right.data_type() == DataType::Null {
        // A comparison with a value of the NULL type (a `void` column) is always NULL.
        return Ok(null_boolean());
    }
    Ok(BoundExpression::Compare {
        op,
        left: Box::new(left),
        right: Box::new(right),
    })
}

/// The type a literal compared with `bound` must have (dictionaries compare by value type).
fn comparison_type(bound: &BoundExpression) -> Result<DataType> {
    let data_type = match bound.data_type() {
        DataType::Dictionary(_, value) => *value,
        other => other,
    };
    if data_type.is_nested() {
        return Err(Error::invalid(format!(
            "{} has nested type {data_type} and cannot be compared",
            bound.describe()
        )));
    }
    Ok(data_type)
}

fn check_same_type(left: &BoundExpression, right: &BoundExpression) -> Result<()> {
    let left_type = comparison_type(left)?;
    let right_type = comparison_type(right)?;
    if left_type == right_type || left_type == DataType::Null || right_type == DataType::Null {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "cannot compare {} of type {left_type} with {} of type {right_type}",
            left.describe(),
            right.describe()
        )))
    }
}

/// Finds `path` in `schema`: each name matches exactly if possible, otherwise case-insensitively
/// (an error if that is ambiguous).
fn resolve_column(schema: &Schema, path: &[String]) -> Result<BoundColumn> {
    let shown = || {
        path.iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(".")
    };
    let mut fields: &Fields = schema.fields();
    let mut resolved = Vec::with_capacity(path.len());
    let mut data_type: Option<&DataType> = None;
    for name in path {
        if let Some(parent) = data_type {
            let DataType::Struct(children) = parent else {
                return Err(Error::invalid(format!(
                    "column `{}` is not a struct, so {} does not exist",
                    resolved.join("."),
                    shown()
                )));
            };
            fields = children;
        }
        let field = find_field(fields, name)?
            .ok_or_else(|| Error::invalid(format!("unknown column {}", shown())))?;
        resolved.push(field.name().clone());
        data_type = Some(field.data_type());
    }
    let data_type = data_type
        .cloned()
        .ok_or_else(|| Error::invalid("empty column name in predicate"))?;
    Ok(BoundColumn {
        path: resolved,
        data_type,
    })
}

fn find_field<'a>(fields: &'a Fields, name: &str) -> Result<Option<&'a Field>> {
    if let Some(field) = fields.iter().find(|field| field.name() == name) {
        return Ok(Some(field.as_ref()));
    }
    let lowered = name.to_lowercase();
    let mut matches = fields
        .iter()
        .filter(|field| field.name().to_lowercase() == lowered);
    let first = matches.next();
    if matches.next().is_some() {
        return Err(Error::invalid(format!(
            "column name `{name}` is ambiguous: several columns match it case-insensitively"
        )));
    }
    Ok(first.map(|field| field.as_ref()))
}

/// The type a literal has on its own (compared with another literal, or under `IS NULL`).
fn natural_type(literal: &Literal) -> DataType {
    match literal {
        Literal::Null => DataType::Null,
        Literal::Boolean(_) => DataType::Boolean,
        Literal::Number(text) => {
            let is_integer = DecimalText::parse(text)
                .and_then(|decimal| decimal.to_scaled_i128(0, Rounding::Exact))
                .is_some_and(|value| i64::try_from(value).is_ok());
            if is_integer {
                DataType::Int64
            } else {
                DataType::Float64
            }
        }
        Literal::String(_) => DataType::Utf8,
        Literal::Binary(_) => DataType::Binary,
        Literal::Date(_) => DataType::Date32,
        Literal::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Literal::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

fn natural_literal(literal: &Literal) -> Result<ArrayRef> {
    coerce_literal(literal, &natural_type(literal), "literal")
}

/// The type two literals compared with each other are both converted to: two integers compare as
/// `Int64`, other numbers as `Float64`; otherwise a typed literal (date, timestamp, boolean,
/// binary) or a number gives its type to a string.
fn common_literal_type(left: &Literal, right: &Literal) -> DataType {
    let left_type = natural_type(left);
    let right_type = natural_type(right);
    match (left, right) {
        (Literal::Null, _) | (_, Literal::Null) => DataType::Null,
        (Literal::Number(_), Literal::Number(_)) => {
            if left_type == DataType::Int64 && right_type == DataType::Int64 {
                DataType::Int64
            } else {
                DataType::Float64
            }
        }
        (Literal::String(_), _) => right_type,
        _ => left_type,
    }
}

/// Converts `literal` to a length-1 array of `data_type`, exactly. `target` names what the
/// literal is compared with, for messages.
fn coerce_literal(literal: &Literal, data_type: &DataType, target: &str) -> Result<ArrayRef> {
    coerce_literal_as(literal, data_type, LiteralUse::Compared(target))
}

/// What a literal being typed is for, for messages.
#[derive(Debug, Clone, Copy)]
enum LiteralUse<'a> {
    /// Compared with this (`column `x``).
    Compared(&'a str),
    /// A value in this construct (`CASE`, `a SET value`).
    Value(&'a str),
}

/// Converts `literal` to a length-1 array of `data_type`, exactly.
fn coerce_literal_as(
    literal: &Literal,
    data_type: &DataType,
    use_: LiteralUse<'_>,
) -> Result<ArrayRef> {
    let mismatch = |kind: &str| {
        Error::invalid(match use_ {
            LiteralUse::Compared(target) => {
                format!("cannot compare {target} of type {data_type} with a {kind} literal")
            }
            LiteralUse::Value(what) => {
                format!("a {kind} literal in {what} cannot be used as a value of type {data_type}")
            }
        })
    };
    let text_error = |error: TextError| {
        Error::invalid(match (use_, error) {
            (LiteralUse::Compared(target), TextError::Malformed) => {
                format!("literal compared with {target} is not a valid {data_type} value")
            }
            (LiteralUse::Compared(target), TextError::DoesNotFit) => {
                format!("literal compared with {target} does not fit its type {data_type}")
            }
            (LiteralUse::Compared(target), TextError::Unsupported) => {
                format!("literals cannot be compared with {target} of type {data_type}")
            }
            (LiteralUse::Value(what), TextError::Malformed) => {
                format!("a literal in {what} is not a valid {data_type} value")
            }
            (LiteralUse::Value(what), TextError::DoesNotFit) => {
                format!("a literal in {what} does not fit the type {data_type}")
            }
            (LiteralUse::Value(what), TextError::Unsupported) => {
                format!("a literal in {what} cannot be a value of type {data_type}")
            }
        })
    };
    let rules = TextRules {
        naive_timestamp_zone: None,
        binary: BinaryText::Utf8,
    };
    let array = match literal {
        Literal::Null => new_null_array(data_type, 1),
        _ if *data_type == DataType::Null => new_null_array(data_type, 1),
        Literal::Boolean(value) => match data_type {
            DataType::Boolean => Arc::new(BooleanArray::from(vec![*value])),
            _ => return Err(mismatch("boolean")),
        },
        Literal::Number(text) => {
            if !data_type.is_numeric() {
                return Err(mismatch("number"));
            }
            array_from_text(text, data_type, rules).map_err(text_error)?
        }
        // A string is read as a value of the type it is compared with ('2024-01-01', '42').
        Literal::String(text) => array_from_text(text, data_type, rules).map_err(text_error)?,
        Literal::Binary(bytes) => {
            binary_array(bytes.clone(), data_type).map_err(|_| mismatch("binary"))?
        }
        Literal::Date(days) => match data_type {
            DataType::Date32 => Arc::new(Date32Array::from(vec![*days])),
            DataType::Timestamp(unit, tz) => {
                let micros =
                    days_to_micros(*days).ok_or_else(|| text_error(TextError::DoesNotFit))?;
                let value = micros_to_unit(micros, *unit, Rounding::Exact)
                    .ok_or_else(|| text_error(TextError::DoesNotFit))?;
                timestamp_array(value, *unit, tz.clone())
            }
            _ => return Err(mismatch("DATE")),
        },
        Literal::Timestamp(micros) | Literal::TimestampNtz(micros) => match data_type {
            DataType::Timestamp(unit, tz) => {
                let value = micros_to_unit(*micros, *unit, Rounding::Exact)
                    .ok_or_else(|| text_error(TextError::DoesNotFit))?;
                timestamp_array(value, *unit, tz.clone())
            }
            _ => return Err(mismatch("TIMESTAMP")),
        },
    };
    Ok(normalize_floats(array))
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// An intermediate result: one value per row, or one value for every row.
enum Value {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Value {
    fn array(&self) -> &ArrayRef {
        match self {
            Self::Array(array) | Self::Scalar(array) => array,
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Self::Scalar(_))
    }

    fn map(self, f: impl FnOnce(&ArrayRef) -> Result<ArrayRef>) -> Result<Self> {
        Ok(match self {
            Self::Array(array) => Self::Array(f(&array)?),
            Self::Scalar(array) => Self::Scalar(f(&array)?),
        })
    }

    /// The boolean values, one per row.
    fn into_booleans(self, rows: usize) -> Result<BooleanArray> {
        let booleans = as_booleans(self.array())?;
        Ok(match self {
            Self::Array(_) => booleans.clone(),
            Self::Scalar(_) => repeat_boolean(booleans, rows),
        })
    }
}

fn as_booleans(array: &ArrayRef) -> Result<&BooleanArray> {
    array.as_boolean_opt().ok_or_else(|| {
        Error::invalid(format!(
            "expected a boolean value but found {}",
            array.data_type()
        ))
    })
}

fn repeat_boolean(scalar: &BooleanArray, rows: usize) -> BooleanArray {
    if scalar.is_empty() || scalar.is_null(0) {
        BooleanArray::new(
            BooleanBuffer::new_unset(rows),
            Some(NullBuffer::new_null(rows)),
        )
    } else if scalar.value(0) {
        BooleanArray::new(BooleanBuffer::new_set(rows), None)
    } else {
        BooleanArray::new(BooleanBuffer::new_unset(rows), None)
    }
}

/// A `Datum` over a value (a scalar for one-for-all values).
fn datum(value: &Value) -> Result<Box<dyn Datum>> {
    Ok(match value {
        Value::Array(array) => Box::new(Arc::clone(array)),
        Value::Scalar(array) => {
            if array.len() != 1 {
                return Err(Error::invalid(
                    "a scalar value must have exactly one element",
                ));
            }
            Box::new(Scalar::new(Arc::clone(array)))
        }
    })
}

fn compare_values(op: CompareOp, left: &Value, right: &Value) -> Result<Value> {
    let result: ArrayRef = Arc::new(op.apply(datum(left)?.as_ref(), datum(right)?.as_ref())?);
    Ok(if left.is_scalar() && right.is_scalar() {
        Value::Scalar(result)
    } else {
        Value::Array(result)
    })
}

fn combine(
    left: Value,
    right: Value,
    rows: usize,
    kernel: fn(&BooleanArray, &BooleanArray) -> Result<BooleanArray, ArrowError>,
) -> Result<Value> {
    if left.is_scalar() && right.is_scalar() {
        let result = kernel(as_booleans(left.array())?, as_booleans(right.array())?)?;
        return Ok(Value::Scalar(Arc::new(result)));
    }
    let result = kernel(&left.into_booleans(rows)?, &right.into_booleans(rows)?)?;
    Ok(Value::Array(Arc::new(result)))
}

fn negate(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(Arc::new(not(as_booleans(array)?)?))
}

/// Makes floats compare as Spark does under arrow's total order: every NaN becomes the positive
/// quiet NaN and `-0.0` becomes `0.0`. Other arrays are returned unchanged.
pub(crate) fn normalize_floats(array: ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            let canonical = |v: &f64| {
                let bits = v.to_bits();
                bits != (-0.0_f64).to_bits() && (!v.is_nan() || bits == f64::NAN.to_bits())
            };
            if values.values().iter().all(canonical) {
                return array;
            }
            let normalized: Float64Array = values.unary(|v| {
                if v.is_nan() {
                    f64::NAN
                } else if v == 0.0 {
                    0.0
                } else {
                    v
                }
            });
            Arc::new(normalized)
        }
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>();
            let canonical = |v: &f32| {
                let bits = v.to_bits();
                bits != (-0.0_f32).to_bits() && (!v.is_nan() || bits == f32::NAN.to_bits())
            };
            if values.values().iter().all(canonical) {
                return array;
            }
            let normalized: Float32Array = values.unary(|v| {
                if v.is_nan() {
                    f32::NAN
                } else if v == 0.0 {
                    0.0
                } else {
                    v
                }
            });
            Arc::new(normalized)
        }
        _ => array,
    }
}

/// Reads `path` from `batch`, pulling nested struct fields; a field under a NULL struct is NULL.
fn column_array(batch: &RecordBatch, column: &BoundColumn) -> Result<ArrayRef> {
    let missing = || Error::invalid(format!("column `{}` is not in the batch", column.name()));
    let mut names = column.path.iter();
    let first = names.next().ok_or_else(missing)?;
    let mut array = batch.column_by_name(first).ok_or_else(missing)?.clone();
    for name in names {
        let parent = array.as_struct_opt().ok_or_else(missing)?;
        let child = parent.column_by_name(name).ok_or_else(missing)?;
        array = match NullBuffer::union(parent.nulls(), child.nulls()) {
            Some(nulls) if nulls.null_count() > child.null_count() => {
                make_array(child.to_data().into_builder().nulls(Some(nulls)).build()?)
            }
            _ => child.clone(),
        };
    }
    if array.data_type() != &column.data_type {
        return Err(Error::invalid(format!(
            "column `{}` has type {} in the batch but {} in the predicate's schema",
            column.name(),
            array.data_type(),
            column.data_type
        )));
    }
    Ok(array)
}

impl BoundExpression {
    /// Evaluates the predicate over every row of `batch` with SQL three-valued logic.
    ///
    /// The result has one entry per row: true, false or NULL. Columns are found by name, so the
    /// batch may have more (or reordered) columns than the schema the predicate was bound to.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a referenced column is missing from the batch or has
    /// another type than at bind time; [`Error::Arrow`] if a kernel fails.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        self.eval(batch)?.into_booleans(batch.num_rows())
    }

    /// The rows of `batch` where the predicate is true (NULL counts as false).
    ///
    /// # Errors
    ///
    /// As [`BoundExpression::evaluate`].
    pub fn filter(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mask = self.evaluate(batch)?;
        let mask = if mask.null_count() > 0 {
            prep_null_mask_filter(&mask)
        } else {
            mask
        };
        Ok(filter_record_batch(batch, &mask)?)
    }

    fn eval(&self, batch: &RecordBatch) -> Result<Value> {
        let rows = batch.num_rows();
        Ok(match self {
            Self::Column(column) => Value::Array(column_array(batch, column)?),
            Self::Literal(scalar) => Value::Scalar(scalar.clone().into_inner()),
            Self::Compare { op, left, right } => {
                let left = left.eval_operand(batch)?;
                let right = right.eval_operand(batch)?;
                compare_values(*op, &left, &right)?
            }
            Self::And(children) => {
                let mut result = Value::Scalar(Arc::new(BooleanArray::from(vec![true])));
                for child in children {
                    result = combine(result, child.eval(batch)?, rows, and_kleene)?;
                }
                result
            }
            Self::Or(children) => {
                let mut result = Value::Scalar(Arc::new(BooleanArray::from(vec![false])));
                for child in children {
                    result = combine(result, child.eval(batch)?, rows, or_kleene)?;
                }
                result
            }
            Self::Not(inner) => inner.eval(batch)?.map(negate)?,
            Self::IsNull { expr, negated } => expr.eval(batch)?.map(|array| {
                let result = if *negated {
                    is_not_null(array.as_ref())?
                } else {
                    is_null(array.as_ref())?
                };
                Ok(Arc::new(result) as ArrayRef)
            })?,
            Self::InList {
                expr,
                list,
                negated,
            } => {
                let operand = expr.eval_operand(batch)?;
                let mut result = Value::Scalar(Arc::new(BooleanArray::from(vec![false])));
                for item in list {
                    let equal =
                        compare_values(CompareOp::Eq, &operand, &item.eval_operand(batch)?)?;
                    result = combine(result, equal, rows, or_kleene)?;
                }
                if *negated {
                    result.map(negate)?
                } else {
                    result
                }
            }
            Self::Computed(computed) => computed.eval(batch)?,
        })
    }

    /// Evaluates an operand of a comparison, normalizing floats.
    fn eval_operand(&self, batch: &RecordBatch) -> Result<Value> {
        self.eval(batch)?
            .map(|array| Ok(normalize_floats(Arc::clone(array))))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]
mod tests {
    use super::*;
    use arrow::array::{
        Decimal128Array, Int8Array, Int32Array, Int64Array, StringArray, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Decimal128Type, Int8Type, Int64Type, TimestampMicrosecondType};
    use proptest::prelude::*;

    fn col(name: &str) -> Expression {
        Expression::Column(vec![name.to_string()])
    }

    fn num(text: &str) -> Expression {
        Expression::Literal(Literal::Number(text.to_string()))
    }

    fn string(text: &str) -> Expression {
        Expression::Literal(Literal::String(text.to_string()))
    }

    fn cmp_expr(op: CompareOp, left: Expression, right: Expression) -> Expression {
        Expression::Compare {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }

    fn invalid_message(result: Result<impl fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidArgument { message }) => message,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_language() {
        assert_eq!(
            parse("a = 1").unwrap(),
            cmp_expr(CompareOp::Eq, col("a"), num("1"))
        );
        assert_eq!(
            parse("`a b` <> 'x'").unwrap(),
            cmp_expr(CompareOp::NotEq, col("a b"), string("x"))
        );
        assert_eq!(
            parse("\"A\".b != -1.50").unwrap(),
            cmp_expr(
                CompareOp::NotEq,
                Expression::Column(vec!["A".into(), "b".into()]),
                num("-1.50")
            )
        );
        assert_eq!(
            parse("x >= 1e10 AND y < -(-2) AND z <= +3").unwrap(),
            Expression::And(vec![
                cmp_expr(CompareOp::GtEq, col("x"), num("1e10")),
                cmp_expr(CompareOp::Lt, col("y"), num("2")),
                cmp_expr(CompareOp::LtEq, col("z"), num("3")),
            ])
        );
        assert_eq!(
            parse("d = DATE '2024-01-01'").unwrap(),
            cmp_expr(
                CompareOp::Eq,
                col("d"),
                Expression::Literal(Literal::Date(19723))
            )
        );
        assert_eq!(
            parse("t > TIMESTAMP '2024-01-01T10:00:00+01:00'").unwrap(),
            cmp_expr(
                CompareOp::Gt,
                col("t"),
                Expression::Literal(Literal::Timestamp(1_704_099_600_000_000))
            )
        );
        assert_eq!(
            parse("t > TIMESTAMP '2024-01-01 10:00:00'").unwrap(),
            parse("t > TIMESTAMP '2024-01-01T10:00:00Z'").unwrap()
        );
        assert_eq!(
            parse("t = TIMESTAMP_NTZ '2024-01-01 10:00:00.5'").unwrap(),
            cmp_expr(
                CompareOp::Eq,
                col("t"),
                Expression::Literal(Literal::TimestampNtz(1_704_103_200_500_000))
            )
        );
        assert_eq!(
            parse("NOT (a IS NULL OR b IS NOT NULL)").unwrap(),
            Expression::Not(Box::new(Expression::Or(vec![
                Expression::IsNull {
                    expr: Box::new(col("a")),
                    negated: false
                },
                Expression::IsNull {
                    expr: Box::new(col("b")),
                    negated: true
                },
            ])))
        );
        assert_eq!(
            parse("a NOT IN (1, NULL) AND b BETWEEN 'a' AND 'b' AND c = TRUE AND d = X'0aFF'")
                .unwrap(),
            Expression::And(vec![
                Expression::InList {
                    expr: Box::new(col("a")),
                    list: vec![num("1"), Expression::Literal(Literal::Null)],
                    negated: true
                },
                Expression::Between {
                    expr: Box::new(col("b")),
                    low: Box::new(string("a")),
                    high: Box::new(string("b")),
                    negated: false
                },
                cmp_expr(
                    CompareOp::Eq,
                    col("c"),
                    Expression::Literal(Literal::Boolean(true))
                ),
                cmp_expr(
                    CompareOp::Eq,
                    col("d"),
                    Expression::Literal(Literal::Binary(vec![0x0a, 0xff]))
                ),
            ])
        );
        // Parenthesized conjunctions stay nested.
        assert_eq!(
            parse("(a AND b) AND c").unwrap(),
            Expression::And(vec![Expression::And(vec![col("a"), col("b")]), col("c")])
        );
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        for (sql, needle) in [
            ("f(a) = 1", "function `f`"),
            ("count(DISTINCT a) = 1", "function `count`"),
            ("a & 1 = 2", "operator `&`"),
            ("a DIV 2 = 1", "DIV"),
            ("a LIKE 'x%'", "LIKE"),
            ("a IN (SELECT 1)", "subqueries"),
            ("EXISTS (SELECT 1)", "subqueries"),
            ("TRY_CAST(a AS INT) = 1", "use CAST"),
            ("a::INT = 1", "`::`"),
            ("CAST(a AS VARCHAR(3)) = 'x'", "CAST to"),
            ("CAST(a AS DECIMAL(39,0)) = 1", "precision must be 1 to 38"),
            ("CAST(a AS DECIMAL(3,4)) = 1", "precision must be 1 to 38"),
            ("UPPER(a, b) = 'x'", "exactly one argument"),
            ("UPPER(DISTINCT a) = 'x'", "DISTINCT"),
            ("COALESCE() = 1", "at least one argument"),
            ("TRIM(BOTH 'x' FROM a) = 'y'", "TRIM with"),
            ("upper(a) OVER () = 'x'", "OVER"),
            ("a = 1 garbage", "unexpected"),
            ("a = 1;", "unexpected"),
            ("a =", "cannot parse"),
            ("d = DATE '2024-13-01'", "DATE"),
            ("t = TIMESTAMP_NTZ '2024-01-01T00:00:00Z'", "TIMESTAMP_NTZ"),
            ("a = INTERVAL '1' DAY", "not supported"),
        ] {
            let message = invalid_message(parse(sql));
            assert!(message.contains(needle), "{sql}: {message}");
        }
        assert!(invalid_message(parse_value("a +")).contains("cannot parse value expression"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}a = 1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(invalid_message(parse(&deep)).contains("cannot parse"));
        let deep = format!("{}TRUE", "NOT ".repeat(5000));
        assert!(invalid_message(parse(&deep)).contains("cannot parse"));
    }

    #[test]
    fn columns_are_top_level_and_deduplicated() {
        let expr = parse("b.x = 1 AND a = 2 OR b.y IN (a, c) AND 1 = 1").unwrap();
        assert_eq!(expr.columns(), vec!["b", "a", "c"]);
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("tiny", DataType::Int8, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "ntz",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("flag", DataType::Boolean, true),
            Field::new(
                "person",
                DataType::Struct(Fields::from(vec![
                    Field::new("age", DataType::Int32, true),
                    Field::new("Name", DataType::Utf8, true),
                ])),
                true,
            ),
            Field::new("Mixed", DataType::Int32, true),
            Field::new("void", DataType::Null, true),
        ])
    }

    fn bind(sql: &str) -> Result<BoundExpression> {
        parse(sql)?.bind(&schema())
    }

    fn bound_literal(sql: &str) -> ArrayRef {
        match bind(sql).unwrap() {
            BoundExpression::Compare { right, .. } => match *right {
                BoundExpression::Literal(scalar) => scalar.into_inner(),
                other => panic!("not a literal: {other:?}"),
            },
            other => panic!("not a comparison: {other:?}"),
        }
    }

    #[test]
    fn binds_literals_to_the_column_type() {
        let day = bound_literal("day = '2024-01-01'");
        assert_eq!(
            day.as_primitive::<arrow::datatypes::Date32Type>().value(0),
            19723
        );
        let amount = bound_literal("amount >= 1.5");
        assert_eq!(amount.data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(amount.as_primitive::<Decimal128Type>().value(0), 150);
        let amount = bound_literal("amount >= 7");
        assert_eq!(amount.as_primitive::<Decimal128Type>().value(0), 700);
        let score = bound_literal("score > 3");
        assert_eq!(score.as_primitive::<Float64Type>().value(0), 3.0);
        let nan = bound_literal("score = 'NaN'");
        assert!(nan.as_primitive::<Float64Type>().value(0).is_nan());
        let id = bound_literal("id = '42'");
        assert_eq!(id.as_primitive::<Int64Type>().value(0), 42);
        let tiny = bound_literal("tiny = -128");
        assert_eq!(tiny.as_primitive::<Int8Type>().value(0), -128);
        let ts = bound_literal("ts > '2024-01-01 10:00:00'");
        assert_eq!(ts.data_type(), &schema().field(6).data_type().clone());
        assert_eq!(
            ts.as_primitive::<TimestampMicrosecondType>().value(0),
            1_704_103_200_000_000
        );
        let ts = bound_literal("ts > '2024-01-01T10:00:00-02:00'");
        assert_eq!(
            ts.as_primitive::<TimestampMicrosecondType>().value(0),
            1_704_110_400_000_000
        );
        let ntz = bound_literal("ntz > '2024-01-01 10:00:00'");
        assert_eq!(
            ntz.as_primitive::<TimestampMicrosecondType>().value(0),
            1_704_103_200_000_000
        );
        let midnight = bound_literal("ts >= DATE '2024-01-01'");
        assert_eq!(
            midnight.as_primitive::<TimestampMicrosecondType>().value(0),
            1_704_067_200_000_000
        );
        // Case-insensitive resolution, exact match preferred, nested fields.
        assert!(bind("ID = 1").is_ok());
        assert!(bind("mixed = 1").is_ok());
        assert!(bind("person.AGE > 3 AND `person`.`name` = 'x'").is_ok());
        assert_eq!(
            bind("PERSON.age > 3").unwrap().columns(),
            vec!["person".to_string()]
        );
    }

    #[test]
    fn bind_errors_name_the_column_not_the_value() {
        for (sql, needles) in [
            ("tiny = 300", &["`tiny`", "does not fit"][..]),
            ("id = 1.5", &["`id`", "does not fit"][..]),
            ("amount = 1.005", &["`amount`", "does not fit"][..]),
            ("id = 'abc'", &["`id`", "not a valid"][..]),
            ("day = 'abc'", &["`day`", "not a valid"][..]),
            ("name = 5", &["`name`", "number"][..]),
            ("flag = 1", &["`flag`", "number"][..]),
            ("nope = 1", &["unknown column `nope`"][..]),
            ("person.nope = 1", &["unknown column `person`.`nope`"][..]),
            ("id.x = 1", &["`id` is not a struct"][..]),
            ("person = 1", &["nested type"][..]),
            ("id = name", &["`id`", "`name`"][..]),
            ("name", &["must be boolean", "`name`"][..]),
            ("5", &["must be boolean"][..]),
            ("ntz = '2024-01-01T00:00:00Z'", &["`ntz`"][..]),
            (
                "ts = '2024-01-01 00:00:00.1234567'",
                &["`ts`", "does not fit"][..],
            ),
            ("NOT id", &["must be boolean"][..]),
        ] {
            let message = invalid_message(bind(sql));
            for needle in needles {
                assert!(message.contains(needle), "{sql}: {message}");
            }
            for secret in ["300", "1.5", "1.005", "abc"] {
                assert!(!message.contains(secret), "{sql}: {message}");
            }
        }
    }

    fn batch() -> RecordBatch {
        let person = StructArray::new(
            Fields::from(vec![
                Field::new("age", DataType::Int32, true),
                Field::new("Name", DataType::Utf8, true),
            ]),
            vec![
                Arc::new(Int32Array::from(vec![
                    Some(30),
                    Some(40),
                    None,
                    Some(50),
                    Some(60),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("d"),
                    Some("e"),
                ])),
            ],
            // Row 3 is a NULL struct whose child slots still hold values.
            Some(NullBuffer::from(vec![true, true, true, false, true])),
        );
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(2),
                    None,
                    Some(4),
                    Some(5),
                ])),
                Arc::new(Int8Array::from(vec![
                    Some(1),
                    None,
                    Some(3),
                    Some(-4),
                    Some(5),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("ann"),
                    Some("bob"),
                    None,
                    Some("dee"),
                    Some(""),
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(f64::NAN),
                    Some(-0.0),
                    Some(f64::INFINITY),
                    None,
                    Some(-f64::NAN),
                ])),
                Arc::new(
                    Decimal128Array::from(vec![Some(150), Some(-1), None, Some(10_000), Some(0)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(Date32Array::from(vec![
                    Some(19722),
                    Some(19723),
                    Some(19724),
                    None,
                    Some(0),
                ])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_704_103_200_000_000),
                        Some(1_704_103_200_000_001),
                        None,
                        Some(0),
                        Some(-1),
                    ])
                    .with_timezone("UTC"),
                ),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_704_103_200_000_000),
                    None,
                    Some(0),
                    Some(1),
                    Some(2),
                ])),
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    None,
                ])),
                Arc::new(person),
                Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5])),
                new_null_array(&DataType::Null, 5),
            ],
        )
        .unwrap()
    }

    fn eval(sql: &str) -> Vec<Option<bool>> {
        bind(sql)
            .unwrap()
            .evaluate(&batch())
            .unwrap()
            .iter()
            .collect()
    }

    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const N: Option<bool> = None;

    #[test]
    fn three_valued_logic() {
        assert_eq!(eval("id > 2"), vec![F, F, N, T, T]);
        assert_eq!(eval("id = NULL"), vec![N, N, N, N, N]);
        assert_eq!(eval("NOT (id > 2)"), vec![T, T, N, F, F]);
        assert_eq!(eval("id > 2 AND flag"), vec![F, F, N, T, N]);
        assert_eq!(eval("id > 2 OR flag"), vec![T, F, N, T, T]);
        assert_eq!(eval("flag AND NULL"), vec![N, F, N, N, N]);
        assert_eq!(eval("flag OR NULL"), vec![T, N, N, T, N]);
        assert_eq!(eval("id IS NULL"), vec![F, F, T, F, F]);
        assert_eq!(eval("id IS NOT NULL"), vec![T, T, F, T, T]);
        assert_eq!(eval("id IN (1, 4)"), vec![T, F, N, T, F]);
        assert_eq!(eval("id IN (1, NULL)"), vec![T, N, N, N, N]);
        assert_eq!(eval("id NOT IN (1, NULL)"), vec![F, N, N, N, N]);
        assert_eq!(eval("id NOT IN (1, 4)"), vec![F, T, N, F, T]);
        assert_eq!(eval("id BETWEEN 2 AND 4"), vec![F, T, N, T, F]);
        assert_eq!(eval("id NOT BETWEEN 2 AND 4"), vec![T, F, N, F, T]);
        assert_eq!(eval("TRUE"), vec![T, T, T, T, T]);
        assert_eq!(eval("NULL"), vec![N, N, N, N, N]);
        assert_eq!(eval("1 < 2"), vec![T, T, T, T, T]);
        assert_eq!(eval("1 IN (2, NULL)"), vec![N, N, N, N, N]);
        assert_eq!(eval("'bob' IN (name, 'x')"), vec![F, T, N, F, F]);
        assert_eq!(eval("NULL IS NULL"), vec![T, T, T, T, T]);
        assert_eq!(eval("(id > 2) = flag"), vec![F, T, N, T, N]);
        assert_eq!(eval("void = 1"), vec![N, N, N, N, N]);
        assert_eq!(eval("void IS NULL"), vec![T, T, T, T, T]);
        assert_eq!(eval("id IN (void, 1)"), vec![T, N, N, N, N]);
        assert_eq!(eval("person.age < mixed"), vec![F, F, N, N, F]);
        assert_eq!(eval("mixed < person.age"), vec![T, T, N, N, T]);
    }

    #[test]
    fn typed_comparisons() {
        assert_eq!(eval("amount > 0"), vec![T, F, N, T, F]);
        assert_eq!(eval("amount = 100"), vec![F, F, N, T, F]);
        assert_eq!(eval("day >= '2024-01-01'"), vec![F, T, T, N, F]);
        assert_eq!(
            eval("ts > TIMESTAMP '2024-01-01 10:00:00'"),
            vec![F, T, N, F, F]
        );
        assert_eq!(eval("ts < '1970-01-01T00:00:00Z'"), vec![F, F, N, F, T]);
        assert_eq!(
            eval("ntz = TIMESTAMP_NTZ '2024-01-01 10:00:00'"),
            vec![T, N, F, F, F]
        );
        assert_eq!(eval("name >= 'b'"), vec![F, T, N, T, F]);
        assert_eq!(eval("name = ''"), vec![F, F, N, F, T]);
    }

    #[test]
    fn floats_compare_as_spark() {
        // NaN = NaN (whatever its sign bit), NaN above +Infinity, -0.0 = 0.0.
        assert_eq!(eval("score = 'NaN'"), vec![T, F, F, N, T]);
        assert_eq!(eval("score > 'Infinity'"), vec![T, F, F, N, T]);
        assert_eq!(eval("score = 0"), vec![F, T, F, N, F]);
        assert_eq!(eval("score = -0.0"), vec![F, T, F, N, F]);
        assert_eq!(eval("score >= 0"), vec![T, T, T, N, T]);
        assert_eq!(eval("score < 0"), vec![F, F, F, N, F]);
        assert_eq!(eval("score IN (1, 'NaN')"), vec![T, F, F, N, T]);
    }

    #[test]
    fn nested_fields_under_null_structs_are_null() {
        assert_eq!(eval("person.age >= 40"), vec![F, T, N, N, T]);
        assert_eq!(eval("person.age IS NULL"), vec![F, F, T, T, F]);
        assert_eq!(eval("person.name = 'd'"), vec![F, N, F, N, F]);
    }

    #[test]
    fn filter_keeps_only_true_rows() {
        let filtered = bind("id > 1 OR flag").unwrap().filter(&batch()).unwrap();
        let ids: Vec<Option<i64>> = filtered
            .column(0)
            .as_primitive::<Int64Type>()
            .iter()
            .collect();
        assert_eq!(ids, vec![Some(1), Some(2), Some(4), Some(5)]);
        let none = bind("NULL").unwrap().filter(&batch()).unwrap();
        assert_eq!(none.num_rows(), 0);
    }

    #[test]
    fn evaluation_checks_the_batch() {
        let predicate = bind("id > 1").unwrap();
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)])),
            vec![Arc::new(Int32Array::from(vec![1]))],
        )
        .unwrap();
        assert!(invalid_message(predicate.evaluate(&other)).contains("type"));
        let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
        assert!(invalid_message(predicate.evaluate(&empty)).contains("`id`"));
        let constant = bind("TRUE").unwrap().evaluate(&empty).unwrap();
        assert_eq!(constant.len(), 0);
    }

    // ---- Display round trip ---------------------------------------------------------------

    fn name() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z_][a-z0-9_]{0,6}", "[ -~]{1,6}", "\\PC{1,4}"]
    }

    fn number() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            "[0-9]{1,12}",
            proptest::option::of("[0-9]{0,6}"),
            proptest::option::of(-30_i32..30),
        )
            .prop_map(|(negative, integer, fraction, exponent)| {
                let mut text = if negative {
                    "-".to_string()
                } else {
                    String::new()
                };
                text.push_str(&integer);
                if let Some(fraction) = fraction {
                    text.push('.');
                    text.push_str(&fraction);
                }
                if let Some(exponent) = exponent {
                    text.push_str(&format!("e{exponent}"));
                }
                text
            })
    }

    fn literal_strategy() -> impl Strategy<Value = Literal> {
        prop_oneof![
            Just(Literal::Null),
            any::<bool>().prop_map(Literal::Boolean),
            number().prop_map(Literal::Number),
            "\\PC{0,8}".prop_map(Literal::String),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(Literal::Binary),
            (-719_162_i32..2_932_896).prop_map(Literal::Date),
            (-62_135_596_800_000_000_i64..253_402_300_799_999_999).prop_map(Literal::Timestamp),
            (-62_135_596_800_000_000_i64..253_402_300_799_999_999).prop_map(Literal::TimestampNtz),
        ]
    }

    fn atom() -> impl Strategy<Value = Expression> {
        prop_oneof![
            proptest::collection::vec(name(), 1..3).prop_map(Expression::Column),
            literal_strategy().prop_map(Expression::Literal),
        ]
    }

    fn compare_op() -> impl Strategy<Value = CompareOp> {
        prop_oneof![
            Just(CompareOp::Eq),
            Just(CompareOp::NotEq),
            Just(CompareOp::Lt),
            Just(CompareOp::LtEq),
            Just(CompareOp::Gt),
            Just(CompareOp::GtEq),
        ]
    }

    fn arithmetic_op() -> impl Strategy<Value = ArithmeticOp> {
        prop_oneof![
            Just(ArithmeticOp::Add),
            Just(ArithmeticOp::Subtract),
            Just(ArithmeticOp::Multiply),
            Just(ArithmeticOp::Divide),
            Just(ArithmeticOp::Modulo),
        ]
    }

    fn cast_type() -> impl Strategy<Value = CastType> {
        prop_oneof![
            Just(CastType::Boolean),
            Just(CastType::Byte),
            Just(CastType::Short),
            Just(CastType::Int),
            Just(CastType::Long),
            Just(CastType::Float),
            Just(CastType::Double),
            Just(CastType::String),
            Just(CastType::Binary),
            Just(CastType::Date),
            Just(CastType::Timestamp),
            Just(CastType::TimestampNtz),
            (1_u8..=38)
                .prop_flat_map(|precision| (Just(precision), 0..=precision))
                .prop_map(|(precision, scale)| CastType::Decimal { precision, scale }),
        ]
    }

    /// The value constructs over `inner` (the parser folds `-<number>` into the literal, so a
    /// negated number literal is not a tree `parse` produces).
    fn value_expression(
        inner: impl Strategy<Value = Expression> + Clone + 'static,
    ) -> impl Strategy<Value = Expression> {
        prop_oneof![
            (arithmetic_op(), inner.clone(), inner.clone()).prop_map(|(op, left, right)| {
                Expression::Arithmetic {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                }
            }),
            inner
                .clone()
                .prop_filter("parse folds a negated number", |e| {
                    !matches!(e, Expression::Literal(Literal::Number(_)))
                })
                .prop_map(|e| Expression::Negate(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| Expression::Concat {
                left: Box::new(left),
                right: Box::new(right),
            }),
            (
                proptest::collection::vec((inner.clone(), inner.clone()), 1..3),
                proptest::option::of(inner.clone())
            )
                .prop_map(|(branches, else_)| Expression::Case {
                    branches,
                    else_: else_.map(Box::new),
                }),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|args| {
                Expression::Function {
                    name: FunctionName::Coalesce,
                    args,
                }
            }),
            (
                prop_oneof![
                    Just(FunctionName::Upper),
                    Just(FunctionName::Lower),
                    Just(FunctionName::Trim)
                ],
                inner.clone()
            )
                .prop_map(|(name, arg)| Expression::Function {
                    name,
                    args: vec![arg]
                }),
            (inner, cast_type()).prop_map(|(expr, to)| Expression::Cast {
                expr: Box::new(expr),
                to
            }),
        ]
    }

    fn expression() -> impl Strategy<Value = Expression> {
        let leaf = prop_oneof![
            atom(),
            (compare_op(), atom(), atom()).prop_map(|(op, left, right)| cmp_expr(op, left, right)),
            (atom(), any::<bool>()).prop_map(|(expr, negated)| Expression::IsNull {
                expr: Box::new(expr),
                negated
            }),
            (
                atom(),
                proptest::collection::vec(atom(), 1..4),
                any::<bool>()
            )
                .prop_map(|(expr, list, negated)| Expression::InList {
                    expr: Box::new(expr),
                    list,
                    negated
                }),
            (atom(), atom(), atom(), any::<bool>()).prop_map(|(expr, low, high, negated)| {
                Expression::Between {
                    expr: Box::new(expr),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                }
            }),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Expression::And),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Expression::Or),
                inner.clone().prop_map(|e| Expression::Not(Box::new(e))),
                (compare_op(), inner.clone(), inner.clone())
                    .prop_map(|(op, left, right)| cmp_expr(op, left, right)),
                (inner.clone(), any::<bool>()).prop_map(|(expr, negated)| {
                    Expression::IsNull {
                        expr: Box::new(expr),
                        negated,
                    }
                }),
                value_expression(inner),
            ]
        })
    }

    proptest! {
        #[test]
        fn display_parses_back(expr in expression()) {
            let sql = expr.to_string();
            let parsed = parse(&sql);
            prop_assert!(parsed.is_ok(), "{sql}: {parsed:?}");
            prop_assert_eq!(parsed.unwrap(), expr.clone(), "{}", sql);
            let value = parse_value(&sql);
            prop_assert!(value.is_ok(), "{sql}: {value:?}");
            prop_assert_eq!(value.unwrap(), expr, "{}", sql);
        }
    }
}
