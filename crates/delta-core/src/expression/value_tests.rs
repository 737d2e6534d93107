//! Tests of value expressions (parsing, typing, evaluation, errors).

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]

use std::collections::HashMap;
use std::fmt;

use arrow::array::{
    Date32Array, Decimal128Array, Float64Array, Int8Array, Int32Array, Int64Array,
    TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{
    Date32Type, Decimal128Type, Field, Float64Type, Int64Type, TimestampMicrosecondType,
};

use super::*;
use crate::expression::{CompareOp, parse, parse_value};
use crate::scan::{Verdict, prune::prune};

// ---- Fixtures --------------------------------------------------------------------------------

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, true),
        Field::new("tiny", DataType::Int8, true),
        Field::new("d", DataType::Decimal128(10, 2), true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("day", DataType::Date32, true),
        Field::new("ts", utc(), true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("void", DataType::Null, true),
    ])
}

fn batch() -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Int32Array::from(vec![
                Some(1),
                Some(2),
                None,
                Some(4),
                Some(-7),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(10),
                Some(i64::MAX),
                Some(3),
                None,
                Some(i64::MIN),
            ])),
            Arc::new(Int8Array::from(vec![
                Some(1),
                Some(100),
                None,
                Some(-128),
                Some(5),
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(150), Some(200), None, Some(-200), Some(5)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(1e20),
                None,
                Some(-0.0),
                Some(f64::NAN),
            ])),
            Arc::new(StringArray::from(vec![
                Some(" 42 "),
                Some("1.9"),
                None,
                Some("abc"),
                Some("ß x "),
            ])),
            Arc::new(Date32Array::from(vec![
                Some(19723),
                Some(0),
                None,
                Some(19724),
                Some(-1),
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(1_704_103_200_000_000),
                    Some(1_704_103_200_500_000),
                    None,
                    Some(0),
                    Some(-1),
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(false),
            ])),
            new_null_array(&DataType::Null, 5),
        ],
    )
    .unwrap()
}

fn bind(sql: &str, target: Option<&DataType>) -> Result<BoundValue> {
    parse_value(sql)?.bind_value(&schema(), target)
}

fn eval(sql: &str) -> Result<ArrayRef> {
    bind(sql, None)?.evaluate(&batch())
}

/// Evaluates `sql`, checking the result type.
fn typed(sql: &str, data_type: &DataType) -> ArrayRef {
    let array = eval(sql).unwrap();
    assert_eq!(array.data_type(), data_type, "{sql}");
    array
}

fn ints(array: &ArrayRef) -> Vec<Option<i64>> {
    cast(array, &DataType::Int64)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn floats(array: &ArrayRef) -> Vec<Option<f64>> {
    array.as_primitive::<Float64Type>().iter().collect()
}

/// Unscaled decimal values.
fn decimals(array: &ArrayRef) -> Vec<Option<i128>> {
    array.as_primitive::<Decimal128Type>().iter().collect()
}

fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn text(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

fn invalid_message(result: Result<impl fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidArgument { message }) => message,
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

const N: Option<i64> = None;

fn col(name: &str) -> Expression {
    Expression::Column(vec![name.to_string()])
}

fn num(text: &str) -> Expression {
    Expression::Literal(Literal::Number(text.to_string()))
}

fn string(text: &str) -> Expression {
    Expression::Literal(Literal::String(text.to_string()))
}

// ---- Parsing and display ---------------------------------------------------------------------

#[test]
fn parses_value_constructs() {
    let arithmetic = |op, left, right| Expression::Arithmetic {
        op,
        left: Box::new(left),
        right: Box::new(right),
    };
    assert_eq!(
        parse_value("a * 2 + 1").unwrap(),
        arithmetic(
            ArithmeticOp::Add,
            arithmetic(ArithmeticOp::Multiply, col("a"), num("2")),
            num("1")
        )
    );
    assert_eq!(
        parse_value("a / b % -3").unwrap(),
        arithmetic(
            ArithmeticOp::Modulo,
            arithmetic(ArithmeticOp::Divide, col("a"), col("b")),
            num("-3")
        )
    );
    assert_eq!(
        parse_value("-a").unwrap(),
        Expression::Negate(Box::new(col("a")))
    );
    assert_eq!(parse_value("-(1)").unwrap(), num("-1"));
    assert_eq!(parse_value("+a").unwrap(), col("a"));
    assert_eq!(
        parse_value("-2 * a").unwrap(),
        arithmetic(ArithmeticOp::Multiply, num("-2"), col("a"))
    );
    assert_eq!(
        parse_value("a || 'x'").unwrap(),
        Expression::Concat {
            left: Box::new(col("a")),
            right: Box::new(string("x"))
        }
    );
    assert_eq!(
        parse_value("CASE a WHEN 1 THEN 'one' END").unwrap(),
        Expression::Case {
            branches: vec![(
                Expression::Compare {
                    op: CompareOp::Eq,
                    left: Box::new(col("a")),
                    right: Box::new(num("1"))
                },
                string("one")
            )],
            else_: None
        }
    );
    assert_eq!(
        parse_value("coalesce(a, 0)").unwrap(),
        Expression::Function {
            name: FunctionName::Coalesce,
            args: vec![col("a"), num("0")]
        }
    );
    assert_eq!(
        parse_value("TRIM(a)").unwrap(),
        Expression::Function {
            name: FunctionName::Trim,
            args: vec![col("a")]
        }
    );
    for (sql, to) in [
        ("CAST(a AS long)", CastType::Long),
        ("CAST(a AS BIGINT)", CastType::Long),
        ("CAST(a AS int)", CastType::Int),
        ("CAST(a AS integer)", CastType::Int),
        ("CAST(a AS tinyint)", CastType::Byte),
        ("CAST(a AS short)", CastType::Short),
        ("CAST(a AS float)", CastType::Float),
        ("CAST(a AS double)", CastType::Double),
        ("CAST(a AS string)", CastType::String),
        ("CAST(a AS boolean)", CastType::Boolean),
        ("CAST(a AS binary)", CastType::Binary),
        ("CAST(a AS date)", CastType::Date),
        ("CAST(a AS timestamp)", CastType::Timestamp),
        ("CAST(a AS timestamp_ntz)", CastType::TimestampNtz),
        (
            "CAST(a AS decimal(5, 2))",
            CastType::Decimal {
                precision: 5,
                scale: 2,
            },
        ),
        (
            "CAST(a AS DECIMAL)",
            CastType::Decimal {
                precision: 10,
                scale: 0,
            },
        ),
        (
            "CAST(a AS DECIMAL(7))",
            CastType::Decimal {
                precision: 7,
                scale: 0,
            },
        ),
    ] {
        assert_eq!(
            parse_value(sql).unwrap(),
            Expression::Cast {
                expr: Box::new(col("a")),
                to
            },
            "{sql}"
        );
    }
    // Predicates may use values.
    assert_eq!(
        parse("a + 1 > b").unwrap(),
        Expression::Compare {
            op: CompareOp::Gt,
            left: Box::new(arithmetic(ArithmeticOp::Add, col("a"), num("1"))),
            right: Box::new(col("b"))
        }
    );
}

#[test]
fn display_is_sql() {
    for (sql, shown) in [
        ("a - -1", "`a` - (-1)"),
        ("-(a + 1)", "-(`a` + 1)"),
        ("a * (b + c)", "`a` * (`b` + `c`)"),
        ("a || 'x' || b", "(`a` || 'x') || `b`"),
        (
            "CASE WHEN a > 1 THEN 'x' ELSE NULL END",
            "CASE WHEN (`a` > 1) THEN 'x' ELSE NULL END",
        ),
        ("coalesce(a, -1)", "COALESCE(`a`, -1)"),
        ("cast(a as decimal(5,2))", "CAST(`a` AS DECIMAL(5,2))"),
        ("upper(trim(a))", "UPPER((TRIM(`a`)))"),
    ] {
        let expr = parse_value(sql).unwrap();
        assert_eq!(expr.to_string(), shown, "{sql}");
        assert_eq!(parse_value(shown).unwrap(), expr, "{sql}");
    }
    assert_eq!(
        parse_value("a + b * c").unwrap().columns(),
        vec!["a".to_string(), "b".to_string(), "c".to_string()]
    );
}

// ---- Arithmetic ------------------------------------------------------------------------------

#[test]
fn integer_arithmetic_promotes_and_propagates_nulls() {
    let v = typed("i + 1", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(2), Some(3), N, Some(5), Some(-6)]);
    let v = typed("i + tiny", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(2), Some(102), N, Some(-124), Some(-2)]);
    let v = typed("tiny + 1", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(2), Some(101), N, Some(-127), Some(6)]);
    let v = typed("tiny - tiny", &DataType::Int8);
    assert_eq!(ints(&v), vec![Some(0), Some(0), N, Some(0), Some(0)]);
    let v = typed("i - l", &DataType::Int64);
    assert_eq!(ints(&v)[0], Some(-9));
    let v = typed("i % 3", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(1), Some(2), N, Some(1), Some(-1)]);
    let v = typed("l % -1", &DataType::Int64);
    assert_eq!(ints(&v), vec![Some(0), Some(0), Some(0), N, Some(0)]);
    let v = typed("-i", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(-1), Some(-2), N, Some(-4), Some(7)]);
    let v = typed("i + '5'", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(6), Some(7), N, Some(9), Some(-2)]);
    let v = typed("1 + 2", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(3); 5]);
    let v = typed("3000000000 + 1", &DataType::Int64);
    assert_eq!(ints(&v), vec![Some(3_000_000_001); 5]);
    // NULL operands.
    let v = typed("i + NULL", &DataType::Int32);
    assert_eq!(v.null_count(), 5);
    let v = typed("NULL * l", &DataType::Int64);
    assert_eq!(v.null_count(), 5);
    let v = typed("void + 1", &DataType::Int32);
    assert_eq!(v.null_count(), 5);
    let v = typed("NULL + NULL", &DataType::Null);
    assert_eq!(v.len(), 5);
    let v = typed("-NULL", &DataType::Null);
    assert_eq!(v.len(), 5);
}

#[test]
fn division_is_fractional_and_by_zero_is_null() {
    let v = typed("i / 2", &DataType::Float64);
    assert_eq!(
        floats(&v),
        vec![Some(0.5), Some(1.0), None, Some(2.0), Some(-3.5)]
    );
    for sql in ["i / 0", "f / 0", "f / -0.0", "l / (i - i)", "d / 0"] {
        let v = eval(sql).unwrap();
        assert_eq!(v.null_count(), 5, "{sql}");
    }
    for sql in ["i % 0", "f % 0", "d % 0.00", "tiny % (tiny - tiny)"] {
        let v = eval(sql).unwrap();
        assert_eq!(v.null_count(), 5, "{sql}");
    }
    let v = typed("f * 2", &DataType::Float64);
    let values = floats(&v);
    assert_eq!(values[..4], [Some(3.0), Some(2e20), None, Some(-0.0)]);
    assert!(values[4].unwrap().is_nan());
    let v = typed("i * f", &DataType::Float64);
    assert_eq!(floats(&v)[0], Some(1.5));
    let v = typed("d + f", &DataType::Float64);
    assert_eq!(floats(&v)[0], Some(3.0));
    let v = typed("i * 1e2", &DataType::Float64);
    assert_eq!(floats(&v)[0], Some(100.0));
}

#[test]
fn decimal_arithmetic_follows_spark_types_and_rounds_half_up() {
    let v = typed("d + 1", &DataType::Decimal128(11, 2));
    assert_eq!(
        decimals(&v),
        vec![Some(250), Some(300), None, Some(-100), Some(105)]
    );
    let v = typed("d - d", &DataType::Decimal128(11, 2));
    assert_eq!(decimals(&v)[0], Some(0));
    let v = typed("d * d", &DataType::Decimal128(21, 4));
    assert_eq!(
        decimals(&v),
        vec![Some(22_500), Some(40_000), None, Some(40_000), Some(25)]
    );
    // (10,2) / (1,0): scale max(6, 2+1+1) = 6, precision 10-2+0+6 = 14.
    let v = typed("d / 3", &DataType::Decimal128(14, 6));
    assert_eq!(
        decimals(&v),
        vec![
            Some(500_000),
            Some(666_667),
            None,
            Some(-666_667),
            Some(16_667)
        ]
    );
    let v = typed("d / d", &DataType::Decimal128(23, 13));
    assert_eq!(decimals(&v)[0], Some(10_000_000_000_000));
    // (10,2) % (1,1): scale 2, precision min(8, 0) + 2.
    let v = typed("d % 0.3", &DataType::Decimal128(2, 2));
    assert_eq!(
        decimals(&v),
        vec![Some(0), Some(20), None, Some(-20), Some(5)]
    );
    let v = typed("-d", &DataType::Decimal128(10, 2));
    assert_eq!(decimals(&v)[0], Some(-150));
    // An integer column is DECIMAL(10,0); a decimal literal is exact.
    let v = typed("i * 2.5", &DataType::Decimal128(13, 1));
    assert_eq!(
        decimals(&v),
        vec![Some(25), Some(50), None, Some(100), Some(-175)]
    );
    let v = typed("i + d", &DataType::Decimal128(13, 2));
    assert_eq!(decimals(&v)[0], Some(250));
    // Precision above 38 keeps the integer digits and gives up scale down to 6.
    let v = typed("d * d * d * d * d", &DataType::Decimal128(38, 6));
    assert_eq!(decimals(&v)[0], Some(7_593_750));
    let v = typed("1.5 + 2", &DataType::Decimal128(3, 1));
    assert_eq!(decimals(&v)[0], Some(35));
}

#[test]
fn overflow_is_an_error_naming_the_column_not_the_value() {
    for (sql, needles) in [
        (
            "tiny + tiny",
            &["overflow", "`+`", "column `tiny`", "Int8"][..],
        ),
        ("l * 2", &["overflow", "`*`", "column `l`", "Int64"][..]),
        ("l + i", &["overflow", "columns `l`, `i`"][..]),
        ("-l", &["overflow", "unary `-`", "column `l`"][..]),
        ("l - 1", &["overflow", "column `l`"][..]),
        ("2147483647 + 1", &["overflow", "of literals", "Int32"][..]),
        (
            "CAST(f AS BIGINT)",
            &["overflow", "CAST to BIGINT", "column `f`"][..],
        ),
        ("CAST(l AS INT)", &["overflow", "column `l`", "Int32"][..]),
        (
            "d * 1000000000000000000000000000000000000",
            &["overflow", "column `d`", "Decimal128(38, 2)"][..],
        ),
        ("CAST(d AS DECIMAL(2,2))", &["overflow", "column `d`"][..]),
    ] {
        let message = invalid_message(eval(sql));
        for needle in needles {
            assert!(message.contains(needle), "{sql}: {message}");
        }
        for value in [
            "9223372036854775807",
            "200",
            "-128",
            "100000000000000000000",
        ] {
            assert!(!message.contains(value), "{sql}: {message}");
        }
    }
    // Literal-only overflow in a CAST is found when binding.
    let message = invalid_message(bind("CAST(300 AS TINYINT)", None));
    assert!(message.contains("overflow"), "{message}");
    assert!(!message.contains("300"), "{message}");
}

// ---- Strings ---------------------------------------------------------------------------------

#[test]
fn strings_concatenate_and_change_case() {
    let v = typed("s || '!'", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[
            Some(" 42 !"),
            Some("1.9!"),
            None,
            Some("abc!"),
            Some("ß x !")
        ])
    );
    let v = typed("s || i", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[
            Some(" 42 1"),
            Some("1.92"),
            None,
            Some("abc4"),
            Some("ß x -7")
        ])
    );
    let v = typed("'x' || d", &DataType::Utf8);
    assert_eq!(strings(&v)[0].as_deref(), Some("x1.50"));
    let v = typed("'a' || NULL", &DataType::Utf8);
    assert_eq!(v.null_count(), 5);
    let v = typed("'a' || 'b'", &DataType::Utf8);
    assert_eq!(strings(&v), text(&[Some("ab"); 5]));
    let v = typed("UPPER(s)", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[Some(" 42 "), Some("1.9"), None, Some("ABC"), Some("SS X ")])
    );
    let v = typed("LOWER('ÀB')", &DataType::Utf8);
    assert_eq!(strings(&v), text(&[Some("àb"); 5]));
    let v = typed("TRIM(s)", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[Some("42"), Some("1.9"), None, Some("abc"), Some("ß x")])
    );
    let v = typed("UPPER(i)", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[Some("1"), Some("2"), None, Some("4"), Some("-7")])
    );
    let v = typed("UPPER(NULL)", &DataType::Utf8);
    assert_eq!(v.null_count(), 5);
    // TRIM removes spaces only.
    let tabbed = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec![" \tx\t "]))],
    )
    .unwrap();
    let trimmed = parse_value("TRIM(s)")
        .unwrap()
        .bind_value(tabbed.schema_ref(), None)
        .unwrap()
        .evaluate(&tabbed)
        .unwrap();
    assert_eq!(strings(&trimmed), text(&[Some("\tx\t")]));
}

// ---- CASE and COALESCE -----------------------------------------------------------------------

#[test]
fn case_takes_the_first_true_branch() {
    let v = typed("CASE WHEN i > 1 THEN 'big' ELSE s END", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[Some(" 42 "), Some("big"), None, Some("big"), Some("ß x ")])
    );
    // Without ELSE, no match is NULL; a NULL condition does not match.
    let v = typed("CASE WHEN i > 1 THEN 'big' END", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[None, Some("big"), None, Some("big"), None])
    );
    let v = typed(
        "CASE WHEN flag THEN i WHEN i > 0 THEN 0 END",
        &DataType::Int32,
    );
    assert_eq!(ints(&v), vec![Some(1), Some(0), N, Some(4), N]);
    let v = typed(
        "CASE i WHEN 1 THEN 'one' WHEN 4 THEN 'four' ELSE 'other' END",
        &DataType::Utf8,
    );
    assert_eq!(
        strings(&v),
        text(&[
            Some("one"),
            Some("other"),
            Some("other"),
            Some("four"),
            Some("other")
        ])
    );
    // Literal branches take the type of the typed branches…
    let v = typed(
        "CASE WHEN flag THEN d ELSE 0 END",
        &DataType::Decimal128(10, 2),
    );
    assert_eq!(
        decimals(&v),
        vec![Some(150), Some(0), Some(0), Some(-200), Some(0)]
    );
    // …or widen to their common type.
    let v = typed(
        "CASE WHEN flag THEN 1 ELSE 2.5 END",
        &DataType::Decimal128(11, 1),
    );
    assert_eq!(
        decimals(&v),
        vec![Some(10), Some(25), Some(25), Some(10), Some(25)]
    );
    let v = typed("CASE WHEN flag THEN i ELSE l END", &DataType::Int64);
    assert_eq!(ints(&v)[..2], [Some(1), Some(i64::MAX)]);
    let v = typed("CASE WHEN flag THEN day ELSE ts END", &utc());
    assert_eq!(
        v.as_primitive::<TimestampMicrosecondType>().value(0),
        1_704_067_200_000_000
    );
    let v = typed("CASE WHEN flag THEN NULL END", &DataType::Null);
    assert_eq!(v.len(), 5);
    // A constant condition.
    let v = typed("CASE WHEN TRUE THEN 1 ELSE 2 END", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(1); 5]);
}

#[test]
fn branches_not_taken_are_not_computed() {
    // `l * 10^17` overflows for i64::MAX and i64::MIN, which take the ELSE branch.
    let v = typed(
        "CASE WHEN l BETWEEN 0 AND 100 THEN l * 100000000000000000 ELSE -1 END",
        &DataType::Int64,
    );
    assert_eq!(
        ints(&v),
        vec![
            Some(1_000_000_000_000_000_000),
            Some(-1),
            Some(300_000_000_000_000_000),
            Some(-1),
            Some(-1)
        ]
    );
    assert!(invalid_message(eval("l * 100000000000000000")).contains("overflow"));
    // A later condition is only computed for rows no earlier branch took.
    let v = typed(
        "CASE WHEN l > 100 OR l < 0 THEN 0 WHEN l * 1000 > 5000 THEN 1 ELSE 2 END",
        &DataType::Int32,
    );
    assert_eq!(ints(&v), vec![Some(1), Some(0), Some(2), Some(2), Some(0)]);
    // COALESCE computes an argument only where the earlier ones are NULL.
    let v = typed("COALESCE(i, l * 1000)", &DataType::Int64);
    assert_eq!(
        ints(&v),
        vec![Some(1), Some(2), Some(3000), Some(4), Some(-7)]
    );
}

#[test]
fn coalesce_takes_the_first_non_null() {
    let v = typed("COALESCE(l, i)", &DataType::Int64);
    assert_eq!(
        ints(&v),
        vec![Some(10), Some(i64::MAX), Some(3), Some(4), Some(i64::MIN)]
    );
    let v = typed("COALESCE(void, i, 0)", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(1), Some(2), Some(0), Some(4), Some(-7)]);
    let v = typed("COALESCE(s, 'none')", &DataType::Utf8);
    assert_eq!(strings(&v)[2].as_deref(), Some("none"));
    let v = typed("COALESCE(NULL, NULL)", &DataType::Null);
    assert_eq!(v.len(), 5);
    let v = typed("COALESCE(i)", &DataType::Int32);
    assert_eq!(v.null_count(), 1);
}

// ---- CAST ------------------------------------------------------------------------------------

#[test]
fn cast_reads_text_leniently_and_numbers_exactly() {
    let v = typed("CAST(s AS INT)", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(42), Some(1), N, N, N]);
    let v = typed("CAST(s AS DOUBLE)", &DataType::Float64);
    assert_eq!(floats(&v), vec![Some(42.0), Some(1.9), None, None, None]);
    let v = typed("CAST(s AS DECIMAL(3,0))", &DataType::Decimal128(3, 0));
    assert_eq!(decimals(&v), vec![Some(42), Some(2), None, None, None]);
    let v = typed("CAST(' yes ' AS BOOLEAN)", &DataType::Boolean);
    assert!(v.as_boolean().value(0));
    let v = typed("CAST('F' AS BOOLEAN)", &DataType::Boolean);
    assert!(!v.as_boolean().value(0));
    let v = typed("CAST('maybe' AS BOOLEAN)", &DataType::Boolean);
    assert_eq!(v.null_count(), 5);
    let v = typed("CAST('2024-01-01' AS DATE)", &DataType::Date32);
    assert_eq!(v.as_primitive::<Date32Type>().value(0), 19723);
    let v = typed("CAST('2024-01-01 10:00:00' AS TIMESTAMP)", &utc());
    assert_eq!(
        v.as_primitive::<TimestampMicrosecondType>().value(0),
        1_704_103_200_000_000
    );
    let v = typed("CAST('2024-01-01T10:00:00+01:00' AS TIMESTAMP)", &utc());
    assert_eq!(
        v.as_primitive::<TimestampMicrosecondType>().value(0),
        1_704_099_600_000_000
    );
    let ntz = DataType::Timestamp(TimeUnit::Microsecond, None);
    let v = typed("CAST('2024-01-01T10:00:00+01:00' AS TIMESTAMP_NTZ)", &ntz);
    assert_eq!(v.null_count(), 5);
    // Numbers.
    let v = typed("CAST(d AS INT)", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(1), Some(2), N, Some(-2), Some(0)]);
    let v = typed("CAST(d AS DECIMAL(3,1))", &DataType::Decimal128(3, 1));
    assert_eq!(
        decimals(&v),
        vec![Some(15), Some(20), None, Some(-20), Some(1)]
    );
    let v = typed("CAST(1.005 AS DECIMAL(5,2))", &DataType::Decimal128(5, 2));
    assert_eq!(decimals(&v)[0], Some(101));
    let v = typed("CAST(-1.005 AS DECIMAL(5,2))", &DataType::Decimal128(5, 2));
    assert_eq!(decimals(&v)[0], Some(-101));
    let v = typed("CAST(flag AS INT)", &DataType::Int32);
    assert_eq!(ints(&v), vec![Some(1), Some(0), N, Some(1), Some(0)]);
    let v = typed("CAST(NULL AS INT)", &DataType::Int32);
    assert_eq!(v.null_count(), 5);
    // Printing.
    let v = typed("CAST(i AS STRING)", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[Some("1"), Some("2"), None, Some("4"), Some("-7")])
    );
    let v = typed("CAST(f AS STRING)", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[Some("1.5"), Some("1.0E20"), None, Some("-0.0"), Some("NaN")])
    );
    let v = typed("CAST(0.0001 * 1e0 AS STRING)", &DataType::Utf8);
    assert_eq!(strings(&v)[0].as_deref(), Some("1.0E-4"));
    let v = typed("CAST(ts AS STRING)", &DataType::Utf8);
    assert_eq!(
        strings(&v),
        text(&[
            Some("2024-01-01 10:00:00"),
            Some("2024-01-01 10:00:00.5"),
            None,
            Some("1970-01-01 00:00:00"),
            Some("1969-12-31 23:59:59.999999")
        ])
    );
    let v = typed("CAST(day AS STRING)", &DataType::Utf8);
    assert_eq!(strings(&v)[0].as_deref(), Some("2024-01-01"));
    // Dates and timestamps.
    let v = typed("CAST(day AS TIMESTAMP)", &utc());
    assert_eq!(
        v.as_primitive::<TimestampMicrosecondType>().value(4),
        -86_400_000_000
    );
    let v = typed("CAST(ts AS DATE)", &DataType::Date32);
    let days: Vec<Option<i32>> = v.as_primitive::<Date32Type>().iter().collect();
    assert_eq!(
        days,
        vec![Some(19723), Some(19723), None, Some(0), Some(-1)]
    );
    // Unsupported conversions are bind errors.
    let message = invalid_message(bind("CAST(day AS INT)", None));
    assert!(message.contains("cannot CAST column `day`"), "{message}");
}

// ---- Targets ---------------------------------------------------------------------------------

#[test]
fn a_target_types_literals_and_converts_the_result() {
    let int8 = DataType::Int8;
    let bound = bind("1", Some(&int8)).unwrap();
    assert_eq!(bound.data_type(), &int8);
    let v = bind("'42'", Some(&DataType::Int64))
        .unwrap()
        .evaluate(&batch())
        .unwrap();
    assert_eq!(ints(&v), vec![Some(42); 5]);
    let message = invalid_message(bind("300", Some(&int8)));
    assert!(message.contains("does not fit"), "{message}");
    assert!(!message.contains("300"), "{message}");
    let message = invalid_message(bind("1.005", Some(&DataType::Decimal128(10, 2))));
    assert!(message.contains("does not fit"), "{message}");
    // Store assignment.
    let v = bind("i + 1", Some(&int8))
        .unwrap()
        .evaluate(&batch())
        .unwrap();
    assert_eq!(v.data_type(), &int8);
    assert_eq!(ints(&v), vec![Some(2), Some(3), N, Some(5), Some(-6)]);
    let message = invalid_message(bind("i * 100", Some(&int8)).unwrap().evaluate(&batch()));
    assert!(message.contains("overflow"), "{message}");
    let v = bind("i", Some(&DataType::Utf8))
        .unwrap()
        .evaluate(&batch())
        .unwrap();
    assert_eq!(strings(&v)[4].as_deref(), Some("-7"));
    let v = bind("d", Some(&DataType::Decimal128(3, 1)))
        .unwrap()
        .evaluate(&batch())
        .unwrap();
    assert_eq!(decimals(&v)[4], Some(1));
    let v = bind("NULL", Some(&DataType::Decimal128(10, 2)))
        .unwrap()
        .evaluate(&batch())
        .unwrap();
    assert_eq!(v.data_type(), &DataType::Decimal128(10, 2));
    assert_eq!(v.null_count(), 5);
    for (sql, shown) in [
        ("DATE '2024-01-01'", "2024-01-01"),
        ("TRUE", "true"),
        ("5", "5"),
    ] {
        let v = bind(sql, Some(&DataType::Utf8))
            .unwrap()
            .evaluate(&batch())
            .unwrap();
        assert_eq!(strings(&v)[0].as_deref(), Some(shown), "{sql}");
    }
    let message = invalid_message(bind("day", Some(&DataType::Int64)));
    assert!(message.contains("column `day`"), "{message}");
    assert!(message.contains("use CAST"), "{message}");
    let message = invalid_message(bind("s", Some(&DataType::Int64)));
    assert!(message.contains("cannot be stored"), "{message}");
    // CASE and COALESCE literals take the target type when they fit it…
    let bound = bind("CASE WHEN flag THEN 1 ELSE 2 END", Some(&int8)).unwrap();
    assert!(matches!(
        bound.expression(),
        BoundExpression::Computed(computed) if computed.data_type() == &int8
    ));
    let bound = bind("COALESCE(NULL, 5)", Some(&DataType::Int16)).unwrap();
    assert!(matches!(
        bound.expression(),
        BoundExpression::Computed(computed) if computed.data_type() == &DataType::Int16
    ));
    // …and are converted (checked) otherwise.
    let message = invalid_message(
        bind("CASE WHEN flag THEN 1 ELSE 300 END", Some(&int8))
            .unwrap()
            .evaluate(&batch()),
    );
    assert!(message.contains("overflow"), "{message}");
    let v = bind("CASE WHEN flag THEN 'x' END", Some(&DataType::Utf8))
        .unwrap()
        .evaluate(&batch())
        .unwrap();
    assert_eq!(strings(&v)[..2], text(&[Some("x"), None]));
}

#[test]
fn evaluate_where_computes_only_the_selected_rows() {
    let value = bind("l * 1000", None).unwrap();
    assert!(invalid_message(value.evaluate(&batch())).contains("overflow"));
    let mask = BooleanArray::from(vec![Some(true), Some(false), Some(true), None, Some(false)]);
    let v = value.evaluate_where(&batch(), &mask).unwrap();
    assert_eq!(ints(&v), vec![Some(10_000), N, Some(3000), N, N]);
    let none = BooleanArray::from(vec![false; 5]);
    assert_eq!(
        value.evaluate_where(&batch(), &none).unwrap().null_count(),
        5
    );
    let all = BooleanArray::from(vec![true, false, true, true, false]);
    assert_eq!(
        ints(
            &bind("i", None)
                .unwrap()
                .evaluate_where(&batch(), &all)
                .unwrap()
        ),
        vec![Some(1), N, N, Some(4), N]
    );
    let short = BooleanArray::from(vec![true]);
    assert!(invalid_message(value.evaluate_where(&batch(), &short)).contains("mask"));
    // A constant value over a batch without columns.
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let constant = bind("1 + 1", None).unwrap().evaluate(&empty).unwrap();
    assert_eq!(constant.len(), 0);
}

// ---- Predicates ------------------------------------------------------------------------------

fn predicate(sql: &str) -> Vec<Option<bool>> {
    parse(sql)
        .unwrap()
        .bind(&schema())
        .unwrap()
        .evaluate(&batch())
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn predicates_can_compute_values() {
    const T: Option<bool> = Some(true);
    const F: Option<bool> = Some(false);
    const U: Option<bool> = None;
    // INT + 1 against BIGINT widens both sides.
    assert_eq!(predicate("i + 1 > l"), vec![F, F, U, U, T]);
    assert_eq!(predicate("UPPER(s) = 'ABC'"), vec![F, F, U, T, F]);
    assert_eq!(predicate("COALESCE(flag, FALSE)"), vec![T, F, F, T, F]);
    assert_eq!(
        predicate("CASE WHEN i > 1 THEN TRUE END"),
        vec![U, T, U, T, U]
    );
    assert_eq!(predicate("d * 2 > 3"), vec![F, T, U, F, F]);
    assert_eq!(predicate("i / 0 IS NULL"), vec![T, T, T, T, T]);
    assert_eq!(predicate("i % 2 IN (0, 1)"), vec![T, T, U, T, F]);
    assert_eq!(predicate("-i BETWEEN -2 AND 0"), vec![T, T, U, F, F]);
    assert_eq!(predicate("s || 'x' = 'abcx'"), vec![F, F, U, T, F]);
    assert_eq!(predicate("CAST(s AS INT) = 42"), vec![T, F, U, U, U]);
}

#[test]
fn value_bind_errors_name_columns_never_values() {
    for (sql, needles) in [
        ("s * 2", &["`*` needs numbers", "column `s`", "Utf8"][..]),
        ("i + 'secret'", &["not a valid Int32"][..]),
        ("-s", &["unary `-`", "column `s`"][..]),
        ("-'secret'", &["unary `-`"][..]),
        ("flag + 1", &["column `flag`", "Boolean"][..]),
        (
            "CASE WHEN flag THEN s ELSE 1 END",
            &["CASE mixes", "Utf8", "Int32"][..],
        ),
        ("COALESCE(day, 1)", &["COALESCE mixes", "Date32"][..]),
        ("COALESCE(s, 1)", &["COALESCE mixes"][..]),
        (
            "CASE WHEN i THEN 1 END",
            &["must be boolean", "column `i`"][..],
        ),
        ("nope + 1", &["unknown column `nope`"][..]),
        ("CAST(day AS BOOLEAN)", &["cannot CAST column `day`"][..]),
        (
            "i + DATE '2024-01-01'",
            &["`+` needs numbers", "Date32"][..],
        ),
    ] {
        let message = invalid_message(bind(sql, None));
        for needle in needles {
            assert!(message.contains(needle), "{sql}: {message}");
        }
        assert!(!message.contains("secret"), "{sql}: {message}");
    }
    let message = invalid_message(parse("i + 1").unwrap().bind(&schema()));
    assert!(message.contains("must be boolean"), "{message}");
    let message = invalid_message(parse("day + 0 = 1").unwrap().bind(&schema()));
    assert!(message.contains("column `day`"), "{message}");
}

#[test]
fn pruning_keeps_files_for_computed_predicates() {
    let values: HashMap<String, ArrayRef> = HashMap::from([(
        "i".to_string(),
        Arc::new(Int32Array::from(vec![5])) as ArrayRef,
    )]);
    let bind_predicate = |sql: &str| parse(sql).unwrap().bind(&schema()).unwrap();
    // `i + 1 > 1000` is false in this partition, but pruning does not compute values.
    assert_eq!(
        prune(&bind_predicate("i + 1 > 1000"), &values, None),
        Verdict::Keep
    );
    assert_eq!(
        prune(&bind_predicate("COALESCE(flag, FALSE)"), &values, None),
        Verdict::Keep
    );
    // Known parts still prune.
    assert!(matches!(
        prune(&bind_predicate("i > 1000 AND i + 1 > 0"), &values, None),
        Verdict::Skip(_)
    ));
}

#[test]
fn nested_struct_fields_and_null_structs() {
    let person = arrow::array::StructArray::new(
        arrow::datatypes::Fields::from(vec![Field::new("age", DataType::Int32, true)]),
        vec![Arc::new(Int32Array::from(vec![Some(30), Some(40)]))],
        Some(NullBuffer::from(vec![true, false])),
    );
    let schema = Schema::new(vec![Field::new("person", person.data_type().clone(), true)]);
    let batch = RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::new(person)]).unwrap();
    let v = parse_value("person.age + 1")
        .unwrap()
        .bind_value(&schema, None)
        .unwrap()
        .evaluate(&batch)
        .unwrap();
    assert_eq!(ints(&v), vec![Some(31), N]);
    let message = invalid_message(parse_value("person * 2").unwrap().bind_value(&schema, None));
    assert!(message.contains("column `person`"), "{message}");
    let message = invalid_message(
        parse_value("UPPER(person)")
            .unwrap()
            .bind_value(&schema, None),
    );
    assert!(message.contains("needs strings"), "{message}");
}
