//! Value expressions: arithmetic, `||`, `CASE`, `COALESCE`, `UPPER`/`LOWER`/`TRIM` and `CAST` —
//! their AST pieces, binding (typing, promotion) and evaluation. The semantics are documented on
//! [`BoundValue`].

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int8Array, RecordBatch, Scalar, StringArray,
    UInt32Array, new_null_array,
};
use arrow::compute::kernels::cmp;
use arrow::compute::kernels::concat_elements::concat_elements_utf8;
use arrow::compute::kernels::merge::{merge, merge_n};
use arrow::compute::kernels::numeric;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{
    filter, filter_record_batch, is_not_null, not, nullif, prep_null_mask_filter, take,
};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use arrow::error::ArrowError;
use sqlparser::ast as sql;

use super::cast::{CastFailure, cast_value, is_binary, is_text};
use super::{
    BoundColumn, BoundExpression, Expression, Literal, LiteralUse, Operand, Value, bind_boolean,
    bind_operand, coerce_literal_as, convert, datum, literal_node,
};
use crate::{Error, Result};

/// The largest precision of a decimal (Delta's and Spark's `DECIMAL(38, s)`).
const MAX_DECIMAL_PRECISION: i32 = 38;

// ---------------------------------------------------------------------------------------------
// AST pieces
// ---------------------------------------------------------------------------------------------

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithmeticOp {
    /// `+`
    Add,
    /// `-`
    Subtract,
    /// `*`
    Multiply,
    /// `/` (always fractional: `DOUBLE` for integers and floats, as in Spark)
    Divide,
    /// `%` (remainder with the sign of the dividend)
    Modulo,
}

impl ArithmeticOp {
    /// The SQL spelling.
    #[must_use]
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Subtract => "-",
            Self::Multiply => "*",
            Self::Divide => "/",
            Self::Modulo => "%",
        }
    }
}

impl fmt::Display for ArithmeticOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// A function of the expression language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionName {
    /// `COALESCE(a, b, …)`: the first non-NULL argument (at least one argument).
    Coalesce,
    /// `UPPER(s)`: upper case (full Unicode mapping).
    Upper,
    /// `LOWER(s)`: lower case (full Unicode mapping).
    Lower,
    /// `TRIM(s)`: without leading and trailing spaces (U+0020 only, as Spark).
    Trim,
}

impl FunctionName {
    /// The SQL spelling.
    #[must_use]
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Coalesce => "COALESCE",
            Self::Upper => "UPPER",
            Self::Lower => "LOWER",
            Self::Trim => "TRIM",
        }
    }

    /// The function called `name` (case-insensitive), if the language has it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Coalesce, Self::Upper, Self::Lower, Self::Trim]
            .into_iter()
            .find(|function| function.as_sql().eq_ignore_ascii_case(name))
    }

    fn check_arity(self, count: usize) -> Result<()> {
        match self {
            Self::Coalesce if count == 0 => {
                Err(Error::invalid("COALESCE needs at least one argument"))
            }
            Self::Coalesce => Ok(()),
            _ if count == 1 => Ok(()),
            _ => Err(Error::invalid(format!(
                "{self} takes exactly one argument, not {count}"
            ))),
        }
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// The target of a `CAST`: a Spark SQL type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CastType {
    /// `BOOLEAN`
    Boolean,
    /// `TINYINT` (`BYTE`)
    Byte,
    /// `SMALLINT` (`SHORT`)
    Short,
    /// `INT` (`INTEGER`)
    Int,
    /// `BIGINT` (`LONG`)
    Long,
    /// `FLOAT` (`REAL`)
    Float,
    /// `DOUBLE`
    Double,
    /// `DECIMAL(precision, scale)` (`DECIMAL` alone is `DECIMAL(10,0)`, as in Spark)
    Decimal {
        /// Total digits, 1 to 38.
        precision: u8,
        /// Digits after the point, at most `precision`.
        scale: u8,
    },
    /// `STRING`
    String,
    /// `BINARY`
    Binary,
    /// `DATE`
    Date,
    /// `TIMESTAMP` (an instant; the session time zone is UTC)
    Timestamp,
    /// `TIMESTAMP_NTZ` (wall-clock time)
    TimestampNtz,
}

impl CastType {
    /// The Arrow type values of this type have in this engine.
    #[must_use]
    pub fn to_arrow(self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Byte => DataType::Int8,
            Self::Short => DataType::Int16,
            Self::Int => DataType::Int32,
            Self::Long => DataType::Int64,
            Self::Float => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::Decimal { precision, scale } => {
                DataType::Decimal128(precision, i8::try_from(scale).unwrap_or(i8::MAX))
            }
            Self::String => DataType::Utf8,
            Self::Binary => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::TimestampNtz => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    /// Reads a Spark type name (case-insensitive, spaces ignored): `int`, `bigint`, `long`,
    /// `decimal(10,2)`, `timestamp_ntz`, ….
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for any other name, or a decimal precision outside 1..=38 or a
    /// scale above the precision.
    pub fn from_name(name: &str) -> Result<Self> {
        let text: String = name
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        Ok(match text.as_str() {
            "boolean" | "bool" => Self::Boolean,
            "tinyint" | "byte" => Self::Byte,
            "smallint" | "short" => Self::Short,
            "int" | "integer" => Self::Int,
            "bigint" | "long" => Self::Long,
            "float" | "real" => Self::Float,
            "double" => Self::Double,
            "string" => Self::String,
            "binary" => Self::Binary,
            "date" => Self::Date,
            "timestamp" | "timestamp_ltz" => Self::Timestamp,
            "timestamp_ntz" => Self::TimestampNtz,
            "decimal" | "dec" | "numeric" => Self::Decimal {
                precision: 10,
                scale: 0,
            },
            other => {
                let arguments = ["decimal(", "dec(", "numeric("]
                    .iter()
                    .find_map(|prefix| other.strip_prefix(prefix))
                    .and_then(|rest| rest.strip_suffix(')'));
                let Some(arguments) = arguments else {
                    return Err(Error::invalid(format!(
                        "CAST to `{name}` is not supported (supported: BOOLEAN, TINYINT, \
                         SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p,s), STRING, BINARY, \
                         DATE, TIMESTAMP, TIMESTAMP_NTZ)"
                    )));
                };
                let (precision, scale) = arguments.split_once(',').unwrap_or((arguments, "0"));
                let precision: u8 = precision.parse().map_err(|_| bad_decimal(name))?;
                let scale: u8 = scale.parse().map_err(|_| bad_decimal(name))?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(bad_decimal(name));
                }
                Self::Decimal { precision, scale }
            }
        })
    }

    pub(super) fn from_sql(data_type: &sql::DataType) -> Result<Self> {
        Self::from_name(&data_type.to_string())
    }
}

fn bad_decimal(name: &str) -> Error {
    Error::invalid(format!(
        "invalid decimal type `{name}`: the precision must be 1 to 38 and the scale at most the \
         precision"
    ))
}

impl fmt::Display for CastType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean => f.write_str("BOOLEAN"),
            Self::Byte => f.write_str("TINYINT"),
            Self::Short => f.write_str("SMALLINT"),
            Self::Int => f.write_str("INT"),
            Self::Long => f.write_str("BIGINT"),
            Self::Float => f.write_str("FLOAT"),
            Self::Double => f.write_str("DOUBLE"),
            Self::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            Self::String => f.write_str("STRING"),
            Self::Binary => f.write_str("BINARY"),
            Self::Date => f.write_str("DATE"),
            Self::Timestamp => f.write_str("TIMESTAMP"),
            Self::TimestampNtz => f.write_str("TIMESTAMP_NTZ"),
        }
    }
}

/// Converts a sqlparser function call (`COALESCE`, `UPPER`, `LOWER`; `TRIM` has its own syntax).
pub(super) fn convert_function(function: &sql::Function) -> Result<Expression> {
    let simple_name = match function.name.0.as_slice() {
        [part] => part.as_ident().map(|ident| ident.value.as_str()),
        _ => None,
    };
    let Some(name) = simple_name.and_then(FunctionName::from_name) else {
        return Err(Error::invalid(format!(
            "function `{}` is not supported (supported: COALESCE, UPPER, LOWER, TRIM)",
            function.name
        )));
    };
    if function.uses_odbc_syntax
        || !matches!(function.parameters, sql::FunctionArguments::None)
        || !function.within_group.is_empty()
        || function.filter.is_some()
        || function.null_treatment.is_some()
        || function.over.is_some()
    {
        return Err(Error::invalid(format!(
            "{name} with FILTER, OVER, WITHIN GROUP or other clauses is not supported"
        )));
    }
    let sql::FunctionArguments::List(list) = &function.args else {
        return Err(Error::invalid(format!(
            "{name} needs its arguments in parentheses"
        )));
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(Error::invalid(format!(
            "{name} with DISTINCT, ORDER BY or other clauses is not supported"
        )));
    }
    let args = list
        .args
        .iter()
        .map(|arg| match arg {
            sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(expr)) => convert(expr),
            _ => Err(Error::invalid(format!(
                "{name} takes plain arguments (no names or `*`)"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    name.check_arity(args.len())?;
    Ok(Expression::Function { name, args })
}

// ---------------------------------------------------------------------------------------------
// Bound values
// ---------------------------------------------------------------------------------------------

/// A value expression bound to a schema ([`Expression::bind_value`]); evaluate it with
/// [`BoundValue::evaluate`] or [`BoundValue::evaluate_where`].
///
/// # Semantics
///
/// Spark SQL with ANSI mode off (`spark.sql.ansi.enabled=false`), except that a number that does
/// not fit its type is always an error, never wrapped, saturated or turned into NULL:
///
/// - **NULL** propagates: an operator or function with a NULL operand is NULL (`COALESCE` and
///   `CASE` excepted). A `CASE` whose conditions are all false or NULL is its `ELSE` value, or
///   NULL without `ELSE`.
/// - **Literals.** An integer literal is `INT` (`BIGINT` if it does not fit, `DECIMAL(n,0)` up to
///   38 digits); a number with a point is the exact `DECIMAL(p,s)` it spells (`1.50` is
///   `DECIMAL(3,2)`); a number with an exponent is `DOUBLE`. Next to a decimal operand an integer
///   literal is `DECIMAL(digits,0)`, as in Spark. `NULL` and string literals take the type of the
///   other operand (`id + '1'` reads `'1'` as `id`'s type, exactly, as comparisons do). A literal
///   `CASE`/`COALESCE` branch takes the type of the other branches when it fits exactly, and
///   with no other typed branch the bind target's type. A literal standing alone as the whole
///   value takes the target type exactly (`SET tiny = 300` is an error, as `tiny = 300` is).
/// - **Promotion** (operands of `+ - * %`, branches of `CASE`, arguments of `COALESCE`): integers
///   widen to the wider integer type (`INT + BIGINT` is `BIGINT`; `TINYINT + TINYINT` stays
///   `TINYINT`, as in Spark); an integer with a float is that float type; anything with `DOUBLE`,
///   and a decimal with a float, is `DOUBLE`; a decimal with an integer treats the integer as
///   `DECIMAL(3|5|10|20, 0)` for `TINYINT|SMALLINT|INT|BIGINT`. Branches widen decimals to
///   `DECIMAL(max integer digits + max scale, max scale)` (at most 38 digits) and dates with
///   timestamps to timestamps. Other mixtures (a string and a number) are errors naming the types.
/// - **Decimal arithmetic** follows Spark's result types (with `allowPrecisionLoss`, Spark's
///   default): `+`/`-` give scale `max(s1,s2)` and precision `max(p1-s1,p2-s2) + scale + 1`; `*`
///   gives `(p1+p2+1, s1+s2)`; `/` gives scale `max(6, s1+p2+1)` and precision
///   `p1-s1+s2 + scale`; `%` gives scale `max(s1,s2)` and precision `min(p1-s1,p2-s2) + scale`. A
///   precision above 38 becomes 38 and the scale shrinks to keep the integer digits, but not below
///   `min(scale, 6)`. Intermediates are 256-bit and results are rounded half up (away from zero).
/// - **`/`** is `DOUBLE` for integer and float operands (Spark's `/`; there is no integer
///   division), decimal for decimals.
/// - **Overflow is an error** naming the operation and its columns, never a row value: integer
///   `+ - * %` and unary `-` are checked (no wrapping), a decimal result beyond its precision is an
///   error (Spark without ANSI would give NULL), and so is converting a number that does not fit
///   (`CAST`, promotion, storing into a narrower column). Float arithmetic is IEEE 754 (it can give
///   infinities and NaN, never an error).
/// - **Division by zero** (`/` and `%`; integer, float or decimal) is NULL, as in Spark without
///   ANSI. `x % -1` is 0 for every integer (no overflow for the minimum value).
/// - **`||`, `UPPER`, `LOWER`, `TRIM`** work on strings; other atomic operands are first converted
///   as by `CAST(… AS STRING)`. `TRIM` removes spaces (U+0020) only, as Spark does.
/// - **`CAST`** follows Spark without ANSI for text: text that is not a valid value is NULL
///   (`CAST('abc' AS INT)`); text is trimmed, an integer from text drops its fraction (`'1.9'` is
///   1), a decimal from text rounds half up, booleans accept `t true y yes 1` / `f false n no 0`,
///   dates `YYYY-MM-DD` (optionally followed by a time), timestamps as in literals (no offset means
///   UTC; a text with an offset is NULL as `TIMESTAMP_NTZ`). Numbers become integers by truncation
///   and decimals by rounding half up; a number that does not fit the target is an error (also
///   NaN or an infinity to an integer or decimal). Values print as Spark prints them: timestamps as
///   `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC, floats as Java does (`1.0`, `1.0E20`), binary as UTF-8
///   (invalid sequences replaced). Supported conversions: between numbers and booleans, anything
///   atomic to and from strings, between dates and timestamps, strings to binary.
/// - **Lazy branches, as in Spark**: a `CASE` branch is computed only for the rows that reach it
///   (conditions too) and a `COALESCE` argument only for the rows whose earlier arguments are NULL,
///   so an overflow in a branch a row does not take is not an error. [`BoundValue::evaluate_where`]
///   computes only the selected rows. (`AND` and `OR` compute both sides.)
/// - **Comparisons** of a computed value with a value of another numeric, date or timestamp type
///   widen both sides as above (`a + 1 > b`); two plain columns must still have one type.
#[derive(Debug, Clone)]
pub struct BoundValue {
    expr: BoundExpression,
    data_type: DataType,
}

impl BoundValue {
    /// The Arrow type of the values [`BoundValue::evaluate`] returns.
    #[must_use]
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The resolved top-level column names the value reads, in order of first appearance.
    #[must_use]
    pub fn columns(&self) -> Vec<String> {
        self.expr.columns()
    }

    /// The bound tree (a boolean-typed value can be used as a predicate).
    #[must_use]
    pub fn expression(&self) -> &BoundExpression {
        &self.expr
    }

    /// Computes the value for every row of `batch`: an array of [`BoundValue::data_type`] with
    /// one entry per row. Columns are found by name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] on overflow (naming the operation and its columns) or when a
    /// column is missing from the batch or has another type than at bind time;
    /// [`Error::Arrow`] if a kernel fails otherwise.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let rows = batch.num_rows();
        let array = expand(self.expr.eval(batch)?, rows)?;
        if array.len() != rows || array.data_type() != &self.data_type {
            return Err(Error::invalid(format!(
                "a value expression produced {} values of type {} for {rows} rows of type {}",
                array.len(),
                array.data_type(),
                self.data_type
            )));
        }
        Ok(array)
    }

    /// Computes the value only for the rows where `mask` is true; the other rows (false or NULL
    /// in `mask`) are NULL in the result and are never computed, so they cannot fail. This is what
    /// `UPDATE … SET … WHERE` needs: a row that is not updated must not raise an overflow.
    ///
    /// # Errors
    ///
    /// As [`BoundValue::evaluate`]; [`Error::InvalidArgument`] when `mask` does not have one
    /// entry per row.
    pub fn evaluate_where(&self, batch: &RecordBatch, mask: &BooleanArray) -> Result<ArrayRef> {
        let rows = batch.num_rows();
        if mask.len() != rows {
            return Err(Error::invalid(format!(
                "a row mask of {} entries cannot select from {rows} rows",
                mask.len()
            )));
        }
        let mask = true_mask(mask);
        let selected = mask.true_count();
        if selected == rows {
            return self.evaluate(batch);
        }
        if selected == 0 {
            return Ok(new_null_array(&self.data_type, rows));
        }
        let columns = self.columns();
        let chosen = filter_record_batch(&project(batch, &columns)?, &mask)?;
        let values = self.evaluate(&chosen)?;
        let nulls = Scalar::new(new_null_array(&self.data_type, 1));
        Ok(merge(&mask, &values, &nulls)?)
    }
}

/// A computed node of a bound tree: an operation on bound children, its result type, and a label
/// naming it and the columns it reads (for messages, never values).
#[derive(Debug, Clone)]
pub struct Computed {
    kind: Kind,
    data_type: DataType,
    label: String,
    /// Top-level columns read, to narrow batches before filtering them for lazy branches.
    columns: Vec<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Operands already of the operation's input types (see `arithmetic_types`).
    Arithmetic {
        op: ArithmeticOp,
        left: BoundExpression,
        right: BoundExpression,
    },
    Negate(BoundExpression),
    /// Both operands are `Utf8`.
    Concat(BoundExpression, BoundExpression),
    /// Every value is of the node's type.
    Case {
        branches: Vec<(BoundExpression, BoundExpression)>,
        else_: Option<BoundExpression>,
    },
    /// Every argument is of the node's type.
    Coalesce(Vec<BoundExpression>),
    /// `UPPER`, `LOWER` or `TRIM` of a `Utf8` operand.
    Text(FunctionName, BoundExpression),
    /// A conversion to the node's type.
    Cast(BoundExpression),
}

impl Kind {
    fn children(&self) -> Vec<&BoundExpression> {
        match self {
            Self::Arithmetic { left, right, .. } | Self::Concat(left, right) => vec![left, right],
            Self::Negate(inner) | Self::Text(_, inner) | Self::Cast(inner) => vec![inner],
            Self::Case { branches, else_ } => branches
                .iter()
                .flat_map(|(condition, value)| [condition, value])
                .chain(else_)
                .collect(),
            Self::Coalesce(args) => args.iter().collect(),
        }
    }
}

impl Computed {
    fn node(kind: Kind, data_type: DataType, what: &str) -> BoundExpression {
        let mut names: Vec<String> = Vec::new();
        let mut top: Vec<String> = Vec::new();
        for child in kind.children() {
            child.visit_columns(&mut |column: &BoundColumn| {
                let name = column.name();
                if !names.contains(&name) {
                    names.push(name);
                }
                if let Some(first) = column.path.first()
                    && !top.contains(first)
                {
                    top.push(first.clone());
                }
            });
        }
        let label = match names.as_slice() {
            [] => format!("{what} of literals"),
            [one] => format!("{what} of column `{one}`"),
            many => format!(
                "{what} of columns {}",
                many.iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        BoundExpression::Computed(Box::new(Self {
            kind,
            data_type,
            label,
            columns: top,
        }))
    }

    /// The Arrow type of the computed values.
    #[must_use]
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// What the node computes and from which columns, e.g. ``"`*` of column `amount`"``.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(super) fn visit_columns(&self, visit: &mut impl FnMut(&BoundColumn)) {
        for child in self.kind.children() {
            child.visit_columns(visit);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------------

pub(super) fn bind_value(
    expr: &Expression,
    schema: &Schema,
    target: Option<&DataType>,
) -> Result<BoundValue> {
    let bound = match expr {
        Expression::Literal(literal) => standalone_literal(literal, target)?,
        _ => match bind_hinted(expr, schema, target)? {
            Operand::Bound(bound) => bound,
            Operand::Literal(literal) => standalone_literal(&literal, target)?,
        },
    };
    let bound = match target {
        Some(target) => assign(bound, target)?,
        None => bound,
    };
    Ok(BoundValue {
        data_type: bound.data_type(),
        expr: bound,
    })
}

/// A literal that is a whole value: of `target`'s type exactly when there is one, else of its own
/// type. A literal of another kind that store assignment converts (`DATE '…'`, `TRUE` or `5` into
/// a string column) is converted; a number into a numeric column must fit exactly.
fn standalone_literal(literal: &Literal, target: Option<&DataType>) -> Result<BoundExpression> {
    let Some(target) = target else {
        return literal_node(natural_literal(literal, "the value")?);
    };
    match coerce_literal_as(literal, target, LiteralUse::Value("the value")) {
        Ok(array) => literal_node(array),
        Err(error) => {
            let natural = literal_type(literal, None)?;
            if !(is_number(&natural) && is_number(target)) && assignable(&natural, target) {
                literal_node(natural_literal(literal, "the value")?)
            } else {
                Err(error)
            }
        }
    }
}

/// Binds `expr` passing `hint` (the type the value should have) down into `CASE` and `COALESCE`,
/// whose literal branches take it.
fn bind_hinted(expr: &Expression, schema: &Schema, hint: Option<&DataType>) -> Result<Operand> {
    match expr {
        Expression::Case { .. }
        | Expression::Function {
            name: FunctionName::Coalesce,
            ..
        } => Ok(Operand::Bound(bind_computed(expr, schema, hint)?)),
        _ => bind_operand(expr, schema),
    }
}

/// Binds one of the value constructs (arithmetic, `-`, `||`, `CASE`, functions, `CAST`).
pub(super) fn bind_computed(
    expr: &Expression,
    schema: &Schema,
    hint: Option<&DataType>,
) -> Result<BoundExpression> {
    match expr {
        Expression::Arithmetic { op, left, right } => bind_arithmetic(
            *op,
            bind_operand(left, schema)?,
            bind_operand(right, schema)?,
        ),
        Expression::Negate(inner) => bind_negate(bind_operand(inner, schema)?),
        Expression::Concat { left, right } => {
            let left = to_text(bind_operand(left, schema)?, "`||`")?;
            let right = to_text(bind_operand(right, schema)?, "`||`")?;
            Ok(Computed::node(
                Kind::Concat(left, right),
                DataType::Utf8,
                "`||`",
            ))
        }
        Expression::Case { branches, else_ } => {
            if branches.is_empty() {
                return Err(Error::invalid("CASE needs at least one WHEN"));
            }
            let mut conditions = Vec::with_capacity(branches.len());
            let mut values = Vec::with_capacity(branches.len() + 1);
            for (condition, value) in branches {
                conditions.push(bind_boolean(condition, schema)?);
                values.push(bind_hinted(value, schema, hint)?);
            }
            if let Some(else_) = else_ {
                values.push(bind_hinted(else_, schema, hint)?);
            }
            let (mut values, data_type) = unify(values, hint, "CASE")?;
            let else_ = if else_.is_some() { values.pop() } else { None };
            Ok(Computed::node(
                Kind::Case {
                    branches: conditions.into_iter().zip(values).collect(),
                    else_,
                },
                data_type,
                "CASE",
            ))
        }
        Expression::Function { name, args } => {
            name.check_arity(args.len())?;
            match name {
                FunctionName::Coalesce => {
                    let args = args
                        .iter()
                        .map(|arg| bind_hinted(arg, schema, hint))
                        .collect::<Result<Vec<_>>>()?;
                    let (args, data_type) = unify(args, hint, "COALESCE")?;
                    Ok(Computed::node(Kind::Coalesce(args), data_type, "COALESCE"))
                }
                FunctionName::Upper | FunctionName::Lower | FunctionName::Trim => {
                    let what = name.as_sql();
                    let [arg] = args.as_slice() else {
                        return Err(Error::invalid(format!("{name} takes exactly one argument")));
                    };
                    let arg = to_text(bind_operand(arg, schema)?, what)?;
                    Ok(Computed::node(Kind::Text(*name, arg), DataType::Utf8, what))
                }
            }
        }
        Expression::Cast { expr, to } => bind_cast(bind_operand(expr, schema)?, *to),
        other => match bind_operand(other, schema)? {
            Operand::Bound(bound) => Ok(bound),
            Operand::Literal(literal) => literal_node(natural_literal(&literal, "a value")?),
        },
    }
}

fn bind_arithmetic(op: ArithmeticOp, left: Operand, right: Operand) -> Result<BoundExpression> {
    let what = format!("`{op}`");
    let (left, right) = match (left, right) {
        (Operand::Bound(left), Operand::Bound(right)) => (left, right),
        (Operand::Bound(left), Operand::Literal(right)) => {
            let right = literal_beside(&right, &left.data_type(), &what)?;
            (left, right)
        }
        (Operand::Literal(left), Operand::Bound(right)) => {
            let left = literal_beside(&left, &right.data_type(), &what)?;
            (left, right)
        }
        (Operand::Literal(left), Operand::Literal(right)) => {
            let left_type = literal_type(&left, None)?;
            let right_type = literal_type(&right, None)?;
            (
                literal_beside(&left, &right_type, &what)?,
                literal_beside(&right, &left_type, &what)?,
            )
        }
    };
    for side in [&left, &right] {
        let data_type = side.data_type();
        if !is_number(&data_type) && data_type != DataType::Null {
            return Err(Error::invalid(format!(
                "{what} needs numbers, but {} has type {data_type}",
                side.describe()
            )));
        }
    }
    let (left_type, right_type) = match (left.data_type(), right.data_type()) {
        (DataType::Null, DataType::Null) => {
            return literal_node(new_null_array(&DataType::Null, 1));
        }
        (DataType::Null, other) => (other.clone(), other),
        (other, DataType::Null) => (other.clone(), other),
        both => both,
    };
    let (left_input, right_input, result) = arithmetic_types(op, &left_type, &right_type)?;
    let left = convert_to(left, &left_input, &what)?;
    let right = convert_to(right, &right_input, &what)?;
    Ok(Computed::node(
        Kind::Arithmetic { op, left, right },
        result,
        &what,
    ))
}

fn bind_negate(operand: Operand) -> Result<BoundExpression> {
    let bound = match operand {
        Operand::Bound(bound) => bound,
        Operand::Literal(literal) => literal_node(natural_literal(&literal, "unary `-`")?)?,
    };
    let data_type = bound.data_type();
    if data_type == DataType::Null {
        return Ok(bound);
    }
    if !is_number(&data_type) {
        return Err(Error::invalid(format!(
            "unary `-` needs a number, but {} has type {data_type}",
            bound.describe()
        )));
    }
    Ok(Computed::node(Kind::Negate(bound), data_type, "unary `-`"))
}

fn bind_cast(operand: Operand, to: CastType) -> Result<BoundExpression> {
    let bound = match operand {
        Operand::Bound(bound) => bound,
        Operand::Literal(literal) => literal_node(natural_literal(&literal, "CAST")?)?,
    };
    let from = bound.data_type();
    let target = to.to_arrow();
    if !castable(&from, &target) {
        return Err(Error::invalid(format!(
            "cannot CAST {} of type {from} to {to}",
            bound.describe()
        )));
    }
    convert_to(bound, &target, &format!("CAST to {to}"))
}

/// An operand of `||` or a string function, as a `Utf8` value (other atomic types are
/// converted as `CAST(… AS STRING)`).
fn to_text(operand: Operand, what: &str) -> Result<BoundExpression> {
    let bound = match operand {
        Operand::Bound(bound) => bound,
        Operand::Literal(Literal::Null) => literal_node(new_null_array(&DataType::Utf8, 1))?,
        Operand::Literal(literal) => literal_node(natural_literal(&literal, what)?)?,
    };
    let data_type = bound.data_type();
    if data_type.is_nested() || matches!(data_type, DataType::Dictionary(_, _)) {
        return Err(Error::invalid(format!(
            "{what} needs strings, but {} has type {data_type}",
            bound.describe()
        )));
    }
    convert_to(bound, &DataType::Utf8, what)
}

/// The type of the values in a `CASE` or `COALESCE`: the widest type of the typed values, which
/// literals take when they fit it exactly; with no typed value, `hint` if every literal fits it;
/// otherwise the widest of the literals' own types. Returns the values converted to that type.
fn unify(
    operands: Vec<Operand>,
    hint: Option<&DataType>,
    what: &str,
) -> Result<(Vec<BoundExpression>, DataType)> {
    let incompatible = |left: &DataType, right: &DataType| {
        Error::invalid(format!(
            "{what} mixes values of types {left} and {right}; CAST them to one type"
        ))
    };
    let widen = |left: Option<DataType>, right: DataType| match left {
        None => Ok(right),
        Some(left) => wider(&left, &right).ok_or_else(|| incompatible(&left, &right)),
    };
    let mut typed: Option<DataType> = None;
    for operand in &operands {
        if let Operand::Bound(bound) = operand {
            typed = Some(widen(typed, bound.data_type())?);
        }
    }
    let literals: Vec<&Literal> = operands
        .iter()
        .filter_map(|operand| match operand {
            Operand::Literal(Literal::Null) | Operand::Bound(_) => None,
            Operand::Literal(literal) => Some(literal),
        })
        .collect();
    let fits = |data_type: &DataType, literal: &Literal| {
        coerce_literal_as(literal, data_type, LiteralUse::Value(what)).is_ok()
    };
    let data_type = match typed.filter(|data_type| *data_type != DataType::Null) {
        Some(common) => {
            let mut common = Some(common);
            for literal in &literals {
                if let Some(current) = &common
                    && fits(current, literal)
                {
                    continue;
                }
                common = Some(widen(common, literal_type(literal, None)?)?);
            }
            common
        }
        None => match hint {
            Some(hint) if literals.iter().all(|literal| fits(hint, literal)) => Some(hint.clone()),
            _ => {
                let mut common = None;
                for literal in &literals {
                    common = Some(widen(common, literal_type(literal, None)?)?);
                }
                common
            }
        },
    }
    .unwrap_or(DataType::Null);
    let values = operands
        .into_iter()
        .map(|operand| match operand {
            Operand::Literal(literal) => literal_node(coerce_literal_as(
                &literal,
                &data_type,
                LiteralUse::Value(what),
            )?),
            Operand::Bound(bound) => convert_to(bound, &data_type, what),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((values, data_type))
}

/// Converts a computed comparison operand and the other side to one type when they differ and
/// a wider type exists (`a + 1 > b` with `INT` and `BIGINT`); otherwise returns them unchanged
/// for the comparison's own type check.
pub(super) fn widen_pair(
    left: BoundExpression,
    right: BoundExpression,
) -> Result<(BoundExpression, BoundExpression)> {
    let (left_type, right_type) = (left.data_type(), right.data_type());
    if left_type == right_type || left_type == DataType::Null || right_type == DataType::Null {
        return Ok((left, right));
    }
    match wider(&left_type, &right_type) {
        Some(common) if !common.is_nested() => Ok((
            convert_to(left, &common, "comparison")?,
            convert_to(right, &common, "comparison")?,
        )),
        _ => Ok((left, right)),
    }
}

/// `bound` converted to `target` under store assignment (see [`Expression::bind_value`]).
fn assign(bound: BoundExpression, target: &DataType) -> Result<BoundExpression> {
    let from = bound.data_type();
    if from == *target {
        return Ok(bound);
    }
    if !assignable(&from, target) {
        return Err(Error::invalid(format!(
            "{} of type {from} cannot be stored as {target}; use CAST",
            bound.describe()
        )));
    }
    convert_to(bound, target, &format!("conversion to {target}"))
}

/// `bound` as a value of `to`: a literal is converted now, anything else gets a conversion node.
fn convert_to(bound: BoundExpression, to: &DataType, what: &str) -> Result<BoundExpression> {
    if bound.data_type() == *to {
        return Ok(bound);
    }
    if let BoundExpression::Literal(scalar) = &bound {
        let array = scalar.clone().into_inner();
        let converted = cast_value(&array, to)
            .map_err(|failure| cast_error(failure, &format!("{what} of literals"), to))?;
        return literal_node(converted);
    }
    Ok(Computed::node(Kind::Cast(bound), to.clone(), what))
}

fn cast_error(failure: CastFailure, label: &str, to: &DataType) -> Error {
    match failure {
        CastFailure::Overflow => {
            Error::invalid(format!("overflow in {label}: a value does not fit {to}"))
        }
        CastFailure::Unsupported(message) => {
            Error::invalid(format!("cannot compute {label}: {message}"))
        }
    }
}

// ---- Literal typing ------------------------------------------------------------------------

/// A literal typed as its own value (`1` is `INT`, `1.5` is `DECIMAL(2,1)`, `'a'` is a string).
fn natural_literal(literal: &Literal, what: &str) -> Result<ArrayRef> {
    coerce_literal_as(
        literal,
        &literal_type(literal, None)?,
        LiteralUse::Value(what),
    )
}

/// The type of a literal on its own (`beside` is the other operand's type, which makes an
/// integer literal next to a decimal a decimal, as in Spark).
fn literal_type(literal: &Literal, beside: Option<&DataType>) -> Result<DataType> {
    Ok(match literal {
        Literal::Null => DataType::Null,
        Literal::Boolean(_) => DataType::Boolean,
        Literal::Number(text) => number_type(text, beside)?,
        Literal::String(_) => DataType::Utf8,
        Literal::Binary(_) => DataType::Binary,
        Literal::Date(_) => DataType::Date32,
        Literal::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Literal::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
    })
}

/// Spark's type of a number literal: `INT`, `BIGINT`, `DECIMAL(n,0)` for integers (or
/// `DECIMAL(digits,0)` beside a decimal), the exact `DECIMAL(p,s)` of a number with a point, and
/// `DOUBLE` with an exponent or beyond 38 digits.
fn number_type(text: &str, beside: Option<&DataType>) -> Result<DataType> {
    let unsigned = text.trim_start_matches(['-', '+']);
    if unsigned.contains(['e', 'E']) {
        return Ok(DataType::Float64);
    }
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if !integer
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(Error::invalid("malformed number literal"));
    }
    let significant = format!("{integer}{fraction}");
    let digits = significant.trim_start_matches('0').len().max(1);
    if unsigned.contains('.') {
        let scale = fraction.len();
        let precision = digits.max(scale);
        return Ok(match (u8::try_from(precision), i8::try_from(scale)) {
            (Ok(precision), Ok(scale)) if i32::from(precision) <= MAX_DECIMAL_PRECISION => {
                DataType::Decimal128(precision, scale)
            }
            _ => DataType::Float64,
        });
    }
    let digits_u8 = u8::try_from(digits)
        .ok()
        .filter(|d| i32::from(*d) <= MAX_DECIMAL_PRECISION);
    if matches!(beside, Some(DataType::Decimal128(_, _)))
        && let Some(digits) = digits_u8
    {
        return Ok(DataType::Decimal128(digits, 0));
    }
    let value: Option<i128> = text.parse().ok();
    Ok(match value {
        Some(value) if i32::try_from(value).is_ok() => DataType::Int32,
        Some(value) if i64::try_from(value).is_ok() => DataType::Int64,
        _ => match digits_u8 {
            Some(digits) => DataType::Decimal128(digits, 0),
            None => DataType::Float64,
        },
    })
}

/// A literal operand of arithmetic next to a value of type `beside`: NULL and strings take that
/// type (strings exactly, as in comparisons), numbers get their Spark type.
fn literal_beside(literal: &Literal, beside: &DataType, what: &str) -> Result<BoundExpression> {
    let array = match literal {
        Literal::Null => new_null_array(beside, 1),
        Literal::String(_) if is_number(beside) => {
            coerce_literal_as(literal, beside, LiteralUse::Value(what))?
        }
        _ => coerce_literal_as(
            literal,
            &literal_type(literal, Some(beside))?,
            LiteralUse::Value(what),
        )?,
    };
    literal_node(array)
}

// ---- Types -----------------------------------------------------------------------------------

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

fn is_float(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
}

fn is_number(data_type: &DataType) -> bool {
    is_integer(data_type) || is_float(data_type) || matches!(data_type, DataType::Decimal128(_, _))
}

fn is_datetime(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Date32 | DataType::Timestamp(_, _))
}

fn integer_rank(data_type: &DataType) -> u8 {
    match data_type {
        DataType::Int8 => 1,
        DataType::Int16 => 2,
        DataType::Int32 => 3,
        _ => 4,
    }
}

/// The decimal an integer or decimal type converts to exactly (`INT` is `DECIMAL(10,0)`).
fn as_decimal(data_type: &DataType) -> Option<(u8, i8)> {
    match data_type {
        DataType::Int8 => Some((3, 0)),
        DataType::Int16 => Some((5, 0)),
        DataType::Int32 => Some((10, 0)),
        DataType::Int64 => Some((20, 0)),
        DataType::Decimal128(precision, scale) if *scale >= 0 => Some((*precision, *scale)),
        _ => None,
    }
}

fn decimal_type(precision: i32, scale: i32) -> DataType {
    let scale = scale.clamp(0, MAX_DECIMAL_PRECISION);
    let precision = precision.clamp(scale.max(1), MAX_DECIMAL_PRECISION);
    DataType::Decimal128(
        u8::try_from(precision).unwrap_or(38),
        i8::try_from(scale).unwrap_or(38),
    )
}

/// The type two values widen to (Spark's `findWiderTypeForTwo`, restricted to this language's
/// types), or `None` when they have none.
fn wider(left: &DataType, right: &DataType) -> Option<DataType> {
    use DataType as D;
    if left == right {
        return Some(left.clone());
    }
    Some(match (left, right) {
        (D::Null, other) | (other, D::Null) => other.clone(),
        (l, r) if is_integer(l) && is_integer(r) => {
            if integer_rank(l) >= integer_rank(r) {
                l.clone()
            } else {
                r.clone()
            }
        }
        (l, r) if is_number(l) && is_number(r) => {
            let decimal = matches!(l, D::Decimal128(_, _)) || matches!(r, D::Decimal128(_, _));
            if *l == D::Float64 || *r == D::Float64 || (decimal && (is_float(l) || is_float(r))) {
                D::Float64
            } else if is_float(l) || is_float(r) {
                D::Float32
            } else {
                let (p1, s1) = as_decimal(l)?;
                let (p2, s2) = as_decimal(r)?;
                let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
                let scale = s1.max(s2);
                decimal_type((p1 - s1).max(p2 - s2) + scale, scale)
            }
        }
        (D::Date32, D::Timestamp(unit, zone)) | (D::Timestamp(unit, zone), D::Date32) => {
            D::Timestamp(*unit, zone.clone())
        }
        (D::Timestamp(unit, left_zone), D::Timestamp(right_unit, right_zone))
            if unit == right_unit =>
        {
            D::Timestamp(*unit, left_zone.clone().or_else(|| right_zone.clone()))
        }
        (l, r) if is_text(l) && is_text(r) => D::Utf8,
        _ => return None,
    })
}

/// The input types of the two operands and the result type of `left op right`.
fn arithmetic_types(
    op: ArithmeticOp,
    left: &DataType,
    right: &DataType,
) -> Result<(DataType, DataType, DataType)> {
    let decimal =
        matches!(left, DataType::Decimal128(_, _)) || matches!(right, DataType::Decimal128(_, _));
    if decimal && !is_float(left) && !is_float(right) {
        let unsupported = |data_type: &DataType| {
            Error::invalid(format!(
                "`{op}` does not support type {data_type} (a negative decimal scale)"
            ))
        };
        let (p1, s1) = as_decimal(left).ok_or_else(|| unsupported(left))?;
        let (p2, s2) = as_decimal(right).ok_or_else(|| unsupported(right))?;
        let (p1i, s1i, p2i, s2i) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
        let (precision, scale) = match op {
            ArithmeticOp::Add | ArithmeticOp::Subtract => {
                let scale = s1i.max(s2i);
                ((p1i - s1i).max(p2i - s2i) + scale + 1, scale)
            }
            ArithmeticOp::Multiply => (p1i + p2i + 1, s1i + s2i),
            ArithmeticOp::Divide => {
                let scale = 6.max(s1i + p2i + 1);
                (p1i - s1i + s2i + scale, scale)
            }
            ArithmeticOp::Modulo => {
                let scale = s1i.max(s2i);
                ((p1i - s1i).min(p2i - s2i) + scale, scale)
            }
        };
        let (precision, scale) = if precision <= MAX_DECIMAL_PRECISION {
            (precision, scale)
        } else {
            // Spark's `DecimalType.adjustPrecisionScale`: keep the integer digits, give up
            // scale down to min(scale, 6).
            let integer_digits = precision - scale;
            let minimum_scale = scale.min(6);
            (
                MAX_DECIMAL_PRECISION,
                (MAX_DECIMAL_PRECISION - integer_digits).max(minimum_scale),
            )
        };
        return Ok((
            DataType::Decimal128(p1, s1),
            DataType::Decimal128(p2, s2),
            decimal_type(precision, scale),
        ));
    }
    let common = if op == ArithmeticOp::Divide || decimal {
        DataType::Float64
    } else {
        wider(left, right).ok_or_else(|| {
            Error::invalid(format!("`{op}` cannot combine types {left} and {right}"))
        })?
    };
    Ok((common.clone(), common.clone(), common))
}

/// Whether store assignment converts `from` to `to` implicitly (Spark's ANSI store assignment).
fn assignable(from: &DataType, to: &DataType) -> bool {
    from == to
        || *from == DataType::Null
        || (is_number(from) && is_number(to))
        || (is_text(to) && !from.is_nested())
        || (is_datetime(from) && is_datetime(to))
        || (is_binary(from) && is_binary(to))
}

/// Whether `CAST(from AS to)` is supported.
fn castable(from: &DataType, to: &DataType) -> bool {
    let number_or_boolean = |t: &DataType| is_number(t) || *t == DataType::Boolean;
    from == to
        || *from == DataType::Null
        || (number_or_boolean(from) && number_or_boolean(to))
        || (is_text(to) && !from.is_nested() && !matches!(from, DataType::Dictionary(_, _)))
        || (is_text(from)
            && (number_or_boolean(to) || is_datetime(to) || is_binary(to) || is_text(to)))
        || (is_datetime(from) && is_datetime(to))
        || (is_binary(from) && is_binary(to))
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

impl Computed {
    pub(super) fn eval(&self, batch: &RecordBatch) -> Result<Value> {
        match &self.kind {
            Kind::Arithmetic { op, left, right } => {
                let left = left.eval(batch)?;
                let right = right.eval(batch)?;
                self.arithmetic(*op, &left, &right)
            }
            Kind::Negate(inner) => inner.eval(batch)?.map(|array| {
                numeric::neg(array.as_ref()).map_err(|error| self.kernel_error(error))
            }),
            Kind::Concat(left, right) => {
                let left = left.eval(batch)?;
                let right = right.eval(batch)?;
                concat(left, right, batch.num_rows())
            }
            Kind::Text(name, inner) => inner.eval(batch)?.map(|array| text_function(*name, array)),
            Kind::Cast(inner) => inner.eval(batch)?.map(|array| {
                cast_value(array, &self.data_type)
                    .map_err(|failure| cast_error(failure, &self.label, &self.data_type))
            }),
            Kind::Case { branches, else_ } => self.case(branches, else_.as_ref(), batch),
            Kind::Coalesce(args) => self.coalesce(args, batch),
        }
    }

    fn kernel_error(&self, error: ArrowError) -> Error {
        match error {
            ArrowError::ArithmeticOverflow(_) | ArrowError::DivideByZero => {
                Error::invalid(format!(
                    "arithmetic overflow in {}: the result does not fit {}",
                    self.label, self.data_type
                ))
            }
            // These carry only types; others may quote values, which must not leak.
            ArrowError::InvalidArgumentError(message) | ArrowError::NotYetImplemented(message) => {
                Error::invalid(format!("cannot compute {}: {message}", self.label))
            }
            _ => Error::invalid(format!(
                "cannot compute {}: the arithmetic kernel failed",
                self.label
            )),
        }
    }

    fn arithmetic(&self, op: ArithmeticOp, left: &Value, right: &Value) -> Result<Value> {
        let scalar = left.is_scalar() && right.is_scalar();
        let result = if let DataType::Decimal128(precision, scale) = self.data_type {
            self.decimal_arithmetic(op, left, right, precision, scale)?
        } else {
            let right = match op {
                ArithmeticOp::Divide | ArithmeticOp::Modulo => {
                    rewrap(right).map(|array| safe_divisor(array, is_integer(array.data_type())))?
                }
                _ => rewrap(right),
            };
            self.kernel(op, left, &right)?
        };
        Ok(if scalar {
            Value::Scalar(result)
        } else {
            Value::Array(result)
        })
    }

    fn kernel(&self, op: ArithmeticOp, left: &Value, right: &Value) -> Result<ArrayRef> {
        let left = datum(left)?;
        let right = datum(right)?;
        let (left, right) = (left.as_ref(), right.as_ref());
        match op {
            ArithmeticOp::Add => numeric::add(left, right),
            ArithmeticOp::Subtract => numeric::sub(left, right),
            ArithmeticOp::Multiply => numeric::mul(left, right),
            ArithmeticOp::Divide => numeric::div(left, right),
            ArithmeticOp::Modulo => numeric::rem(left, right),
        }
        .map_err(|error| self.kernel_error(error))
    }

    /// Decimal arithmetic on 256-bit intermediates, rounded half up to the Spark result type.
    fn decimal_arithmetic(
        &self,
        op: ArithmeticOp,
        left: &Value,
        right: &Value,
        precision: u8,
        scale: i8,
    ) -> Result<ArrayRef> {
        let widen = |value: &Value, extra_scale: i8| -> Result<Value> {
            rewrap(value).map(|array| match array.data_type() {
                DataType::Decimal128(p, s) => {
                    let wide = DataType::Decimal256(
                        p.saturating_add(extra_scale.unsigned_abs()),
                        s.saturating_add(extra_scale),
                    );
                    cast_value(array, &wide)
                        .map_err(|failure| cast_error(failure, &self.label, &wide))
                }
                other => Err(Error::invalid(format!(
                    "decimal arithmetic got an operand of type {other}"
                ))),
            })
        };
        // Arrow's decimal division truncates at scale s1 + 4; give the dividend enough scale
        // for one digit beyond the result scale, so the final cast rounds exactly half up.
        let left_scale = match left.array().data_type() {
            DataType::Decimal128(_, s) => *s,
            _ => 0,
        };
        let extra = if op == ArithmeticOp::Divide {
            (i16::from(scale) + 1 - (i16::from(left_scale) + 4)).max(0)
        } else {
            0
        };
        let left = widen(left, i8::try_from(extra).unwrap_or(0))?;
        let right = widen(right, 0)?;
        let right = match op {
            ArithmeticOp::Divide | ArithmeticOp::Modulo => {
                right.map(|array| safe_divisor(array, false))?
            }
            _ => right,
        };
        let raw = self.kernel(op, &left, &right)?;
        let target = DataType::Decimal128(precision, scale);
        cast_value(&raw, &target).map_err(|failure| match failure {
            CastFailure::Overflow => Error::invalid(format!(
                "arithmetic overflow in {}: the result does not fit {target}",
                self.label
            )),
            other => cast_error(other, &self.label, &target),
        })
    }

    /// `CASE`: each condition is computed for the rows no earlier branch took, each value for
    /// the rows its condition took.
    fn case(
        &self,
        branches: &[(BoundExpression, BoundExpression)],
        else_: Option<&BoundExpression>,
        batch: &RecordBatch,
    ) -> Result<Value> {
        let rows = batch.num_rows();
        let mut pieces = Pieces::new(rows);
        let mut remaining = project(batch, &self.columns)?;
        let mut positions: Vec<usize> = (0..rows).collect();
        for (condition, value) in branches {
            let count = remaining.num_rows();
            if count == 0 {
                break;
            }
            let taken = true_mask(&condition.eval(&remaining)?.into_booleans(count)?);
            let taken_count = taken.true_count();
            if taken_count == 0 {
                continue;
            }
            let chosen = if taken_count == count {
                remaining.clone()
            } else {
                filter_record_batch(&remaining, &taken)?
            };
            let values = expand(value.eval(&chosen)?, taken_count)?;
            positions = pieces.add(values, &positions, &taken);
            if taken_count == count {
                remaining = remaining.slice(0, 0);
            } else {
                remaining = filter_record_batch(&remaining, &not(&taken)?)?;
            }
        }
        if let Some(else_) = else_
            && remaining.num_rows() > 0
        {
            let count = remaining.num_rows();
            let values = expand(else_.eval(&remaining)?, count)?;
            let all = BooleanArray::from(vec![true; count]);
            pieces.add(values, &positions, &all);
        }
        Ok(Value::Array(pieces.assemble(&self.data_type)?))
    }

    /// `COALESCE`: each argument is computed for the rows whose earlier arguments are NULL.
    fn coalesce(&self, args: &[BoundExpression], batch: &RecordBatch) -> Result<Value> {
        let rows = batch.num_rows();
        let mut pieces = Pieces::new(rows);
        let mut remaining = project(batch, &self.columns)?;
        let mut positions: Vec<usize> = (0..rows).collect();
        for arg in args {
            let count = remaining.num_rows();
            if count == 0 {
                break;
            }
            let values = expand(arg.eval(&remaining)?, count)?;
            let present = is_not_null(values.as_ref())?;
            let present_count = present.true_count();
            if present_count == 0 {
                continue;
            }
            let chosen = if present_count == count {
                values
            } else {
                filter(values.as_ref(), &present)?
            };
            positions = pieces.add(chosen, &positions, &present);
            if present_count == count {
                break;
            }
            remaining = filter_record_batch(&remaining, &not(&present)?)?;
        }
        Ok(Value::Array(pieces.assemble(&self.data_type)?))
    }
}

/// Results computed for subsets of a batch's rows, put back in row order by `merge_n`.
struct Pieces {
    arrays: Vec<ArrayRef>,
    /// For each row, which array holds its value (`None`: NULL).
    sources: Vec<Option<usize>>,
}

impl Pieces {
    fn new(rows: usize) -> Self {
        Self {
            arrays: Vec::new(),
            sources: vec![None; rows],
        }
    }

    /// Records `values` (one per true entry of `taken`, in order) for the rows `positions[i]`
    /// where `taken[i]`; returns the positions not taken.
    fn add(&mut self, values: ArrayRef, positions: &[usize], taken: &BooleanArray) -> Vec<usize> {
        let index = self.arrays.len();
        self.arrays.push(values);
        let mut rest = Vec::with_capacity(positions.len());
        for (i, position) in positions.iter().enumerate() {
            if taken.value(i) {
                if let Some(source) = self.sources.get_mut(*position) {
                    *source = Some(index);
                }
            } else {
                rest.push(*position);
            }
        }
        rest
    }

    fn assemble(self, data_type: &DataType) -> Result<ArrayRef> {
        let rows = self.sources.len();
        if self.arrays.is_empty() {
            return Ok(new_null_array(data_type, rows));
        }
        let mut counts = vec![0usize; self.arrays.len()];
        for index in self.sources.iter().flatten() {
            if let Some(count) = counts.get_mut(*index) {
                *count += 1;
            }
        }
        for (array, count) in self.arrays.iter().zip(&counts) {
            if array.len() != *count || array.data_type() != data_type {
                return Err(Error::invalid(format!(
                    "a branch produced {} values of type {} for {count} rows of type {data_type}",
                    array.len(),
                    array.data_type()
                )));
            }
        }
        if let [only] = self.arrays.as_slice()
            && only.len() == rows
        {
            return Ok(Arc::clone(only));
        }
        let arrays: Vec<&dyn Array> = self.arrays.iter().map(AsRef::as_ref).collect();
        Ok(merge_n(&arrays, &self.sources)?)
    }
}

/// The divisor with zeros made NULL (so `x / 0` and `x % 0` are NULL); for integer `%`, `-1` is
/// replaced by `1` (same remainder, 0, without overflowing on the minimum value).
fn safe_divisor(divisor: &ArrayRef, integer: bool) -> Result<ArrayRef> {
    let data_type = divisor.data_type();
    let constant = |value: i8| -> Result<Scalar<ArrayRef>> {
        let one: ArrayRef = Arc::new(Int8Array::from(vec![value]));
        let converted = cast_value(&one, data_type)
            .map_err(|_| Error::invalid(format!("cannot divide by a value of type {data_type}")))?;
        Ok(Scalar::new(converted))
    };
    // -0.0 is zero too: compare the normalized values.
    let normalized = super::normalize_floats(Arc::clone(divisor));
    let zero = true_mask(&cmp::eq(&normalized, &constant(0)?)?);
    let mut result = if zero.true_count() > 0 {
        nullif(divisor.as_ref(), &zero)?
    } else {
        Arc::clone(divisor)
    };
    if integer {
        let minus_one = true_mask(&cmp::eq(&result, &constant(-1)?)?);
        if minus_one.true_count() > 0 {
            result = zip(&minus_one, &constant(1)?, &result)?;
        }
    }
    Ok(result)
}

fn concat(left: Value, right: Value, rows: usize) -> Result<Value> {
    let scalar = left.is_scalar() && right.is_scalar();
    let (left, right) = if scalar {
        (Arc::clone(left.array()), Arc::clone(right.array()))
    } else {
        (expand(left, rows)?, expand(right, rows)?)
    };
    let strings = |array: &ArrayRef| {
        array.as_string_opt::<i32>().cloned().ok_or_else(|| {
            Error::invalid(format!(
                "`||` expected strings but found {}",
                array.data_type()
            ))
        })
    };
    let result: ArrayRef = Arc::new(concat_elements_utf8(&strings(&left)?, &strings(&right)?)?);
    Ok(if scalar {
        Value::Scalar(result)
    } else {
        Value::Array(result)
    })
}

fn text_function(name: FunctionName, array: &ArrayRef) -> Result<ArrayRef> {
    let strings = array.as_string_opt::<i32>().ok_or_else(|| {
        Error::invalid(format!(
            "{name} expected strings but found {}",
            array.data_type()
        ))
    })?;
    let result: StringArray = match name {
        FunctionName::Upper => strings.iter().map(|v| v.map(str::to_uppercase)).collect(),
        FunctionName::Lower => strings.iter().map(|v| v.map(str::to_lowercase)).collect(),
        FunctionName::Trim => strings
            .iter()
            .map(|v| v.map(|s| s.trim_matches(' ')))
            .collect(),
        FunctionName::Coalesce => {
            return Err(Error::invalid("COALESCE is not a string function"));
        }
    };
    Ok(Arc::new(result))
}

/// A value with one entry per row (a scalar repeated `rows` times).
fn expand(value: Value, rows: usize) -> Result<ArrayRef> {
    match value {
        Value::Array(array) => Ok(array),
        Value::Scalar(array) => {
            let zeros = UInt32Array::from(vec![0u32; rows]);
            Ok(take(array.as_ref(), &zeros, None)?)
        }
    }
}

/// The same value (a `Value` is not `Clone`).
fn rewrap(value: &Value) -> Value {
    match value {
        Value::Array(array) => Value::Array(Arc::clone(array)),
        Value::Scalar(array) => Value::Scalar(Arc::clone(array)),
    }
}

/// `mask` with NULL as false.
fn true_mask(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    }
}

/// `batch` narrowed to the named top-level columns that it has (cheaper to filter).
fn project(batch: &RecordBatch, columns: &[String]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let indices: Vec<usize> = columns
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .collect();
    Ok(batch.project(&indices)?)
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
