//! Delta table schemas (the `schemaString` JSON) and their Arrow equivalents, including column mapping.
//!
//! The Delta schema is Spark's JSON schema (PROTOCOL.md §9): a `struct` of named fields whose types
//! are primitive names (`"long"`, `"decimal(10,2)"`, ...) or nested `struct` / `array` / `map`
//! objects. [`StructType::parse`] and [`StructType::to_json_string`] convert between that JSON and
//! the [`StructType`] model; the serde impls produce the same JSON so the type can be embedded in
//! actions.
//!
//! Two Arrow views exist:
//! * the **logical** schema ([`to_arrow_schema`]) is what users see: logical column names,
//!   nullability from the Delta schema;
//! * the **physical** schema ([`to_physical_arrow_schema`]) is how columns are named inside the
//!   parquet data files under column mapping (PROTOCOL.md §11): physical names, and in `id` mode the
//!   parquet field ids as `PARQUET:field_id` field metadata.
//!
//! [`can_widen`] answers which Arrow type changes the type-widening feature allows (PROTOCOL.md §16),
//! so a scan can upcast columns of files written before a widening.
//!
//! Metadata order: [`StructField::metadata`] is a `serde_json::Map`, which keeps keys sorted unless
//! serde_json's `preserve_order` feature is enabled. Re-serialised schemas are therefore equal to the
//! input as JSON values, and byte-identical only when the input's metadata keys were sorted.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{
    DataType as ArrowDataType, Field as ArrowField, Fields as ArrowFields, Schema as ArrowSchema,
    TimeUnit,
};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Field metadata key holding a column's stable id under column mapping.
pub const COLUMN_MAPPING_ID_KEY: &str = "delta.columnMapping.id";
/// Field metadata key holding a column's physical (parquet) name under column mapping.
pub const COLUMN_MAPPING_PHYSICAL_NAME_KEY: &str = "delta.columnMapping.physicalName";
/// Field metadata key (IcebergCompatV2) mapping `<physical path>.element|key|value` to field ids.
pub const COLUMN_MAPPING_NESTED_IDS_KEY: &str = "delta.columnMapping.nested.ids";
/// Table property selecting the column mapping mode.
pub const COLUMN_MAPPING_MODE_KEY: &str = "delta.columnMapping.mode";
/// Arrow field metadata key the parquet crate reads and writes field ids under.
pub const PARQUET_FIELD_ID_META_KEY: &str = parquet::arrow::PARQUET_FIELD_ID_META_KEY;
/// Arrow extension name marking a variant column (`ARROW:extension:name`).
pub const ARROW_VARIANT_EXTENSION_NAME: &str = "arrow.parquet.variant";

/// The highest decimal precision Delta allows.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The "path" used in errors about a schema string.
const SCHEMA_STRING: &str = "schemaString";

/// The name of list elements in Arrow schemas built here (Parquet's 3-level list convention).
const LIST_ELEMENT_NAME: &str = "element";
/// The name of the entries struct of Arrow maps built here (Parquet's convention).
const MAP_ENTRIES_NAME: &str = "key_value";
/// The name of map keys.
const MAP_KEY_NAME: &str = "key";
/// The name of map values.
const MAP_VALUE_NAME: &str = "value";
/// The Arrow field metadata key naming an extension type.
const ARROW_EXTENSION_NAME_KEY: &str = "ARROW:extension:name";

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// A Delta data type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataType {
    /// A primitive (leaf) type.
    Primitive(PrimitiveType),
    /// A struct of named fields.
    Struct(StructType),
    /// An array of one element type.
    Array(Box<ArrayType>),
    /// A map from keys to values.
    Map(Box<MapType>),
}

/// A Delta primitive type (the JSON name is given for each variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrimitiveType {
    /// `string`: UTF-8 text.
    String,
    /// `long`: 64-bit signed integer.
    Long,
    /// `integer`: 32-bit signed integer.
    Integer,
    /// `short`: 16-bit signed integer.
    Short,
    /// `byte`: 8-bit signed integer.
    Byte,
    /// `float`: IEEE-754 single precision.
    Float,
    /// `double`: IEEE-754 double precision.
    Double,
    /// `boolean`.
    Boolean,
    /// `binary`: arbitrary bytes.
    Binary,
    /// `date`: a calendar day (days since 1970-01-01).
    Date,
    /// `timestamp`: microseconds since the epoch, a UTC instant.
    Timestamp,
    /// `timestamp_ntz`: microseconds of wall-clock time without a zone.
    TimestampNtz,
    /// `decimal(p,s)`: a fixed-point decimal, `1 <= precision <= 38`, `scale <= precision`.
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: u8,
    },
    /// `void`: always null, never materialised in data files.
    Void,
    /// `variant`: semi-structured data (binary `metadata` + `value`).
    Variant,
}

/// A named field of a [`StructType`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructField {
    /// The logical column name.
    pub name: String,
    /// The column's type.
    pub data_type: DataType,
    /// Whether the column may hold nulls.
    pub nullable: bool,
    /// Field metadata (column mapping, identity, invariants, generation expressions, ...).
    pub metadata: Map<String, Value>,
}

/// A struct type: an ordered list of fields. The table schema is a `StructType`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StructType {
    /// The fields in order.
    pub fields: Vec<StructField>,
}

/// An array type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayType {
    /// The type of the elements.
    pub element_type: DataType,
    /// Whether elements may be null.
    pub contains_null: bool,
}

/// A map type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapType {
    /// The type of the keys (keys are never null).
    pub key_type: DataType,
    /// The type of the values.
    pub value_type: DataType,
    /// Whether values may be null.
    pub value_contains_null: bool,
}

impl From<PrimitiveType> for DataType {
    fn from(p: PrimitiveType) -> Self {
        Self::Primitive(p)
    }
}

impl From<StructType> for DataType {
    fn from(s: StructType) -> Self {
        Self::Struct(s)
    }
}

impl From<ArrayType> for DataType {
    fn from(a: ArrayType) -> Self {
        Self::Array(Box::new(a))
    }
}

impl From<MapType> for DataType {
    fn from(m: MapType) -> Self {
        Self::Map(Box::new(m))
    }
}

impl ArrayType {
    /// An array of `element_type`.
    pub fn new(element_type: impl Into<DataType>, contains_null: bool) -> Self {
        Self {
            element_type: element_type.into(),
            contains_null,
        }
    }
}

impl MapType {
    /// A map from `key_type` to `value_type`.
    pub fn new(
        key_type: impl Into<DataType>,
        value_type: impl Into<DataType>,
        value_contains_null: bool,
    ) -> Self {
        Self {
            key_type: key_type.into(),
            value_type: value_type.into(),
            value_contains_null,
        }
    }
}

impl StructField {
    /// A field without metadata.
    pub fn new(name: impl Into<String>, data_type: impl Into<DataType>, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type: data_type.into(),
            nullable,
            metadata: Map::new(),
        }
    }

    /// This field with `key` set to `value` in its metadata.
    pub fn with_metadata_entry(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The name of this field inside data files under `mode` (see [`physical_name`]).
    pub fn physical_name(&self, mode: ColumnMappingMode) -> &str {
        physical_name(self, mode)
    }

    /// The column mapping id of this field (see [`field_id`]).
    pub fn field_id(&self) -> Option<i32> {
        field_id(self)
    }

    /// The logical Arrow field of this column.
    pub fn to_arrow_field(&self) -> Result<ArrowField> {
        Ok(ArrowField::new(
            self.name.clone(),
            self.data_type.to_arrow()?,
            self.nullable,
        ))
    }
}

impl StructType {
    /// A struct of `fields`.
    pub fn new(fields: impl IntoIterator<Item = StructField>) -> Self {
        Self {
            fields: fields.into_iter().collect(),
        }
    }

    /// Parses a `metaData.schemaString`. The top-level type must be a `struct`.
    ///
    /// Malformed JSON or schema structure is [`Error::Corrupt`] (path `schemaString`); an unknown
    /// type name is [`Error::Unsupported`] with kind `data type`.
    pub fn parse(schema_string: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(schema_string)
            .map_err(|e| Error::corrupt(SCHEMA_STRING, format!("invalid JSON: {e}")))?;
        Self::from_json_value(&value)
    }

    /// Builds a struct type from an already parsed JSON value (see [`StructType::parse`]).
    pub fn from_json_value(value: &Value) -> Result<Self> {
        match parse_data_type(value)? {
            DataType::Struct(s) => Ok(s),
            _ => Err(Error::corrupt(
                SCHEMA_STRING,
                "the schema is not of type \"struct\"",
            )),
        }
    }

    /// The Spark JSON of this schema (the `schemaString` format), object keys in Spark's order.
    pub fn to_json_string(&self) -> String {
        // Serialising to a string cannot fail (all keys are strings); fall back to the
        // equivalent (key-sorted) value form rather than panic.
        serde_json::to_string(self).unwrap_or_else(|_| self.to_json_value().to_string())
    }

    /// The Spark JSON of this schema as a JSON value.
    pub fn to_json_value(&self) -> Value {
        let fields = self.fields.iter().map(field_to_json).collect();
        let mut obj = Map::new();
        obj.insert("type".into(), Value::from("struct"));
        obj.insert("fields".into(), Value::Array(fields));
        Value::Object(obj)
    }

    /// The index of the field called `name`: an exact (case-sensitive) match first, then the first
    /// case-insensitive match.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name).or_else(|| {
            let lower = name.to_lowercase();
            self.fields
                .iter()
                .position(|f| f.name.to_lowercase() == lower)
        })
    }

    /// The field called `name`: an exact (case-sensitive) match first, then the first
    /// case-insensitive match.
    pub fn field(&self, name: &str) -> Option<&StructField> {
        self.index_of(name).and_then(|i| self.fields.get(i))
    }

    /// The field at the nested path `path` (each step a struct field name, looked up like
    /// [`StructType::field`]). Array elements and map entries are not traversed.
    pub fn field_at_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&StructField> {
        let (first, rest) = path.split_first()?;
        let mut field = self.field(first.as_ref())?;
        for step in rest {
            match &field.data_type {
                DataType::Struct(s) => field = s.field(step.as_ref())?,
                _ => return None,
            }
        }
        Some(field)
    }

    /// The field names in order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// The logical Arrow schema of this struct (see [`to_arrow_schema`]).
    pub fn to_arrow(&self) -> Result<ArrowSchema> {
        to_arrow_schema(self)
    }
}

impl fmt::Display for PrimitiveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            other => f.write_str(other.simple_name()),
        }
    }
}

impl PrimitiveType {
    /// The JSON name of every primitive except decimal (which carries parameters).
    fn simple_name(&self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Long => "long",
            Self::Integer => "integer",
            Self::Short => "short",
            Self::Byte => "byte",
            Self::Float => "float",
            Self::Double => "double",
            Self::Boolean => "boolean",
            Self::Binary => "binary",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::TimestampNtz => "timestamp_ntz",
            Self::Decimal { .. } => "decimal",
            Self::Void => "void",
            Self::Variant => "variant",
        }
    }

    /// A decimal type, checking `1 <= precision <= 38` and `scale <= precision`.
    pub fn decimal(precision: u8, scale: u8) -> Result<Self> {
        check_decimal(precision, scale).map_err(Error::invalid)?;
        Ok(Self::Decimal { precision, scale })
    }

    /// Parses a primitive type name (`"long"`, `"decimal(10, 2)"`, ...).
    ///
    /// A malformed decimal is [`Error::Corrupt`] (path `schemaString`); an unknown name is
    /// [`Error::Unsupported`] with kind `data type`.
    pub fn parse(name: &str) -> Result<Self> {
        let p = match name {
            "string" => Self::String,
            "long" => Self::Long,
            "integer" => Self::Integer,
            "short" => Self::Short,
            "byte" => Self::Byte,
            "float" => Self::Float,
            "double" => Self::Double,
            "boolean" => Self::Boolean,
            "binary" => Self::Binary,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            "timestamp_ntz" => Self::TimestampNtz,
            "void" => Self::Void,
            "variant" => Self::Variant,
            // Spark's default decimal.
            "decimal" => Self::Decimal {
                precision: 10,
                scale: 0,
            },
            other => {
                if let Some(params) = other
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                {
                    return parse_decimal_params(params);
                }
                return Err(Error::Unsupported {
                    kind: "data type",
                    feature: other.to_string(),
                });
            }
        };
        Ok(p)
    }

    /// The Arrow type of this primitive (see [`DataType::to_arrow`]).
    pub fn to_arrow(&self) -> Result<ArrowDataType> {
        Ok(match self {
            Self::String => ArrowDataType::Utf8,
            Self::Long => ArrowDataType::Int64,
            Self::Integer => ArrowDataType::Int32,
            Self::Short => ArrowDataType::Int16,
            Self::Byte => ArrowDataType::Int8,
            Self::Float => ArrowDataType::Float32,
            Self::Double => ArrowDataType::Float64,
            Self::Boolean => ArrowDataType::Boolean,
            Self::Binary => ArrowDataType::Binary,
            Self::Date => ArrowDataType::Date32,
            Self::Timestamp => ArrowDataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::TimestampNtz => ArrowDataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Decimal { precision, scale } => {
                check_decimal(*precision, *scale).map_err(Error::invalid)?;
                let scale = i8::try_from(*scale)
                    .map_err(|_| Error::invalid(format!("decimal scale {scale} too large")))?;
                ArrowDataType::Decimal128(*precision, scale)
            }
            Self::Void => ArrowDataType::Null,
            Self::Variant => ArrowDataType::Struct(ArrowFields::from(vec![
                ArrowField::new("metadata", ArrowDataType::Binary, false),
                ArrowField::new("value", ArrowDataType::Binary, false),
            ])),
        })
    }
}

impl FromStr for PrimitiveType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Checks decimal parameters; the error is a reason without a path.
fn check_decimal(precision: u8, scale: u8) -> std::result::Result<(), String> {
    if precision == 0 || precision > MAX_DECIMAL_PRECISION {
        return Err(format!(
            "decimal precision {precision} is outside 1..={MAX_DECIMAL_PRECISION}"
        ));
    }
    if scale > precision {
        return Err(format!(
            "decimal scale {scale} is larger than its precision {precision}"
        ));
    }
    Ok(())
}

/// Parses the `p,s` (or `p, s`) inside `decimal(...)`.
fn parse_decimal_params(params: &str) -> Result<PrimitiveType> {
    let bad = || {
        Error::corrupt(
            SCHEMA_STRING,
            format!("invalid decimal type decimal({params})"),
        )
    };
    let (p, s) = params.split_once(',').ok_or_else(bad)?;
    let p: u8 = p.trim().parse().map_err(|_| bad())?;
    let s: u8 = s.trim().parse().map_err(|_| bad())?;
    check_decimal(p, s).map_err(|reason| Error::corrupt(SCHEMA_STRING, reason))?;
    Ok(PrimitiveType::Decimal {
        precision: p,
        scale: s,
    })
}

impl DataType {
    /// Shorthand for `DataType::Primitive(PrimitiveType::String)`.
    pub const STRING: Self = Self::Primitive(PrimitiveType::String);
    /// Shorthand for `DataType::Primitive(PrimitiveType::Long)`.
    pub const LONG: Self = Self::Primitive(PrimitiveType::Long);
    /// Shorthand for `DataType::Primitive(PrimitiveType::Integer)`.
    pub const INTEGER: Self = Self::Primitive(PrimitiveType::Integer);
    /// Shorthand for `DataType::Primitive(PrimitiveType::Boolean)`.
    pub const BOOLEAN: Self = Self::Primitive(PrimitiveType::Boolean);
    /// Shorthand for `DataType::Primitive(PrimitiveType::Double)`.
    pub const DOUBLE: Self = Self::Primitive(PrimitiveType::Double);

    /// Parses a type from its Spark JSON (a string for primitives, an object for nested types).
    pub fn from_json_value(value: &Value) -> Result<Self> {
        parse_data_type(value)
    }

    /// The Spark JSON of this type.
    pub fn to_json_value(&self) -> Value {
        data_type_to_json(self)
    }

    /// The logical Arrow type: string→Utf8, long→Int64, integer→Int32, short→Int16, byte→Int8,
    /// float→Float32, double→Float64, boolean→Boolean, binary→Binary, date→Date32,
    /// timestamp→Timestamp(µs, "UTC"), timestamp_ntz→Timestamp(µs, none),
    /// decimal(p,s)→Decimal128(p,s), void→Null, variant→Struct{metadata, value: Binary},
    /// array→List("element"), map→Map("key_value"{key, value}, unsorted), struct→Struct.
    ///
    /// Fails only for an invalid decimal built by hand ([`Error::InvalidArgument`]).
    pub fn to_arrow(&self) -> Result<ArrowDataType> {
        to_arrow_type(self)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// Parses one Spark JSON type.
fn parse_data_type(value: &Value) -> Result<DataType> {
    match value {
        Value::String(name) => Ok(DataType::Primitive(PrimitiveType::parse(name)?)),
        Value::Object(obj) => {
            let kind = obj
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::corrupt(SCHEMA_STRING, "type object without a \"type\""))?;
            match kind {
                "struct" => {
                    let fields = obj.get("fields").and_then(Value::as_array).ok_or_else(|| {
                        Error::corrupt(SCHEMA_STRING, "struct type without a \"fields\" array")
                    })?;
                    let fields = fields.iter().map(parse_field).collect::<Result<Vec<_>>>()?;
                    check_unique_names(&fields)?;
                    Ok(DataType::Struct(StructType { fields }))
                }
                "array" => {
                    let element = obj.get("elementType").ok_or_else(|| {
                        Error::corrupt(SCHEMA_STRING, "array type without \"elementType\"")
                    })?;
                    Ok(DataType::Array(Box::new(ArrayType {
                        element_type: parse_data_type(element)?,
                        contains_null: required_bool(obj, "containsNull", "array type")?,
                    })))
                }
                "map" => {
                    let key = obj.get("keyType").ok_or_else(|| {
                        Error::corrupt(SCHEMA_STRING, "map type without \"keyType\"")
                    })?;
                    let value = obj.get("valueType").ok_or_else(|| {
                        Error::corrupt(SCHEMA_STRING, "map type without \"valueType\"")
                    })?;
                    Ok(DataType::Map(Box::new(MapType {
                        key_type: parse_data_type(key)?,
                        value_type: parse_data_type(value)?,
                        value_contains_null: required_bool(obj, "valueContainsNull", "map type")?,
                    })))
                }
                other => Err(Error::Unsupported {
                    kind: "data type",
                    feature: other.to_string(),
                }),
            }
        }
        _ => Err(Error::corrupt(
            SCHEMA_STRING,
            "a type must be a string or an object",
        )),
    }
}

/// Reads a mandatory boolean member of a type object.
fn required_bool(obj: &Map<String, Value>, key: &str, what: &str) -> Result<bool> {
    obj.get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| Error::corrupt(SCHEMA_STRING, format!("{what} without a boolean \"{key}\"")))
}

/// Parses one `{"name","type","nullable","metadata"}` object.
fn parse_field(value: &Value) -> Result<StructField> {
    let obj = value
        .as_object()
        .ok_or_else(|| Error::corrupt(SCHEMA_STRING, "a struct field is not an object"))?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::corrupt(SCHEMA_STRING, "a struct field has no string \"name\""))?;
    let type_value = obj
        .get("type")
        .ok_or_else(|| Error::corrupt(SCHEMA_STRING, format!("field `{name}` has no \"type\"")))?;
    let data_type = parse_data_type(type_value)?;
    let nullable = obj
        .get("nullable")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            Error::corrupt(
                SCHEMA_STRING,
                format!("field `{name}` has no boolean \"nullable\""),
            )
        })?;
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(Error::corrupt(
                SCHEMA_STRING,
                format!("field `{name}` has a non-object \"metadata\""),
            ));
        }
    };
    Ok(StructField {
        name: name.to_string(),
        data_type,
        nullable,
        metadata,
    })
}

/// Column names are unique case-insensitively within a struct (PROTOCOL.md §9).
fn check_unique_names(fields: &[StructField]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(fields.len());
    for f in fields {
        if !seen.insert(f.name.to_lowercase()) {
            return Err(Error::corrupt(
                SCHEMA_STRING,
                format!(
                    "duplicate column name `{}` (names are case-insensitive)",
                    f.name
                ),
            ));
        }
    }
    Ok(())
}

/// The Spark JSON of one field, keys in Spark's order.
fn field_to_json(field: &StructField) -> Value {
    let mut obj = Map::new();
    obj.insert("name".into(), Value::from(field.name.clone()));
    obj.insert("type".into(), data_type_to_json(&field.data_type));
    obj.insert("nullable".into(), Value::from(field.nullable));
    obj.insert("metadata".into(), Value::Object(field.metadata.clone()));
    Value::Object(obj)
}

/// The Spark JSON of one type.
fn data_type_to_json(data_type: &DataType) -> Value {
    match data_type {
        DataType::Primitive(p) => Value::from(p.to_string()),
        DataType::Struct(s) => s.to_json_value(),
        DataType::Array(a) => {
            let mut obj = Map::new();
            obj.insert("type".into(), Value::from("array"));
            obj.insert("elementType".into(), data_type_to_json(&a.element_type));
            obj.insert("containsNull".into(), Value::from(a.contains_null));
            Value::Object(obj)
        }
        DataType::Map(m) => {
            let mut obj = Map::new();
            obj.insert("type".into(), Value::from("map"));
            obj.insert("keyType".into(), data_type_to_json(&m.key_type));
            obj.insert("valueType".into(), data_type_to_json(&m.value_type));
            obj.insert(
                "valueContainsNull".into(),
                Value::from(m.value_contains_null),
            );
            Value::Object(obj)
        }
    }
}

/// Implements `Deserialize` through `serde_json::Value`, so the serde form is exactly the
/// `schemaString` form.
macro_rules! deserialize_via_json_value {
    ($ty:ty, $from:expr) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let value = <Value as serde::Deserialize>::deserialize(deserializer)?;
                let from: fn(&Value) -> Result<$ty> = $from;
                from(&value).map_err(serde::de::Error::custom)
            }
        }
    };
}

deserialize_via_json_value!(StructType, StructType::from_json_value);
deserialize_via_json_value!(DataType, parse_data_type);
deserialize_via_json_value!(StructField, parse_field);
deserialize_via_json_value!(PrimitiveType, |v| match v {
    Value::String(s) => PrimitiveType::parse(s),
    _ => Err(Error::corrupt(
        SCHEMA_STRING,
        "a primitive type must be a string"
    )),
});

// `Serialize` writes object keys in Spark's order (`type` first, `name` before `type` in fields).

impl serde::Serialize for PrimitiveType {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for StructType {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "struct")?;
        map.serialize_entry("fields", &self.fields)?;
        map.end()
    }
}

impl serde::Serialize for StructField {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("type", &self.data_type)?;
        map.serialize_entry("nullable", &self.nullable)?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.end()
    }
}

impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Primitive(p) => p.serialize(serializer),
            Self::Struct(s) => s.serialize(serializer),
            Self::Array(a) => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("type", "array")?;
                map.serialize_entry("elementType", &a.element_type)?;
                map.serialize_entry("containsNull", &a.contains_null)?;
                map.end()
            }
            Self::Map(m) => {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("type", "map")?;
                map.serialize_entry("keyType", &m.key_type)?;
                map.serialize_entry("valueType", &m.value_type)?;
                map.serialize_entry("valueContainsNull", &m.value_contains_null)?;
                map.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Column mapping
// ---------------------------------------------------------------------------------------------

/// The column mapping mode of a table (`delta.columnMapping.mode`, PROTOCOL.md §11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ColumnMappingMode {
    /// Data files use logical column names.
    #[default]
    None,
    /// Data files use the physical names in `delta.columnMapping.physicalName`.
    Name,
    /// Data files are matched by parquet field id (`delta.columnMapping.id`).
    Id,
}

impl ColumnMappingMode {
    /// Parses a mode name (`none`, `name`, `id`; case-insensitive like Spark). Anything else is
    /// [`Error::Unsupported`] with kind `column mapping mode`.
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "name" => Ok(Self::Name),
            "id" => Ok(Self::Id),
            _ => Err(Error::Unsupported {
                kind: "column mapping mode",
                feature: value.to_string(),
            }),
        }
    }

    /// The mode configured by a table's `metaData.configuration` (absent ⇒ [`ColumnMappingMode::None`]).
    pub fn from_configuration<S: BuildHasher>(
        configuration: &HashMap<String, String, S>,
    ) -> Result<Self> {
        configuration
            .get(COLUMN_MAPPING_MODE_KEY)
            .map_or(Ok(Self::None), |v| Self::parse(v))
    }

    /// The property value of this mode.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Name => "name",
            Self::Id => "id",
        }
    }
}

impl fmt::Display for ColumnMappingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ColumnMappingMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The name of `field` inside data files: its `delta.columnMapping.physicalName` in `name` and
/// `id` mode, its logical name otherwise or when that metadata is missing.
pub fn physical_name(field: &StructField, mode: ColumnMappingMode) -> &str {
    match mode {
        ColumnMappingMode::None => &field.name,
        ColumnMappingMode::Name | ColumnMappingMode::Id => field
            .metadata
            .get(COLUMN_MAPPING_PHYSICAL_NAME_KEY)
            .and_then(Value::as_str)
            .unwrap_or(&field.name),
    }
}

/// The column mapping id of `field` (`delta.columnMapping.id`), if present and a 32-bit integer.
pub fn field_id(field: &StructField) -> Option<i32> {
    field
        .metadata
        .get(COLUMN_MAPPING_ID_KEY)
        .and_then(Value::as_i64)
        .and_then(|id| i32::try_from(id).ok())
}

/// The logical Arrow schema: logical names, nullability from the Delta schema, types as in
/// [`DataType::to_arrow`]. The Arrow fields carry no metadata.
pub fn to_arrow_schema(schema: &StructType) -> Result<ArrowSchema> {
    let fields = schema
        .fields
        .iter()
        .map(StructField::to_arrow_field)
        .collect::<Result<Vec<_>>>()?;
    Ok(ArrowSchema::new(fields))
}

/// The Arrow schema of the data files under `mode`: like [`to_arrow_schema`] but every (nested)
/// struct field is named by its [`physical_name`], and in `id` mode carries its column mapping id
/// as `PARQUET:field_id` metadata. In `id` mode, list elements and map keys/values get ids from the
/// parent's `delta.columnMapping.nested.ids` when present.
///
/// In `id` mode a struct field without a valid `delta.columnMapping.id` is [`Error::Corrupt`].
pub fn to_physical_arrow_schema(
    schema: &StructType,
    mode: ColumnMappingMode,
) -> Result<ArrowSchema> {
    let fields = schema
        .fields
        .iter()
        .map(|f| physical_arrow_field(f, mode))
        .collect::<Result<Vec<_>>>()?;
    Ok(ArrowSchema::new(fields))
}

/// One struct field of the physical schema, recursively.
fn physical_arrow_field(field: &StructField, mode: ColumnMappingMode) -> Result<ArrowField> {
    let name = physical_name(field, mode);
    let nested_ids = match mode {
        ColumnMappingMode::Id => field
            .metadata
            .get(COLUMN_MAPPING_NESTED_IDS_KEY)
            .and_then(Value::as_object),
        _ => None,
    };
    let mut ctx = PhysicalCtx {
        mode,
        nested_ids,
        path: name.to_string(),
    };
    let data_type = physical_arrow_type(&field.data_type, &mut ctx)?;
    let mut arrow_field = ArrowField::new(name, data_type, field.nullable);
    // `_change_type` is the one column of change data files that is not in the table schema;
    // it is found by name, as Spark writes it.
    let change_type = field.name == crate::write::CHANGE_TYPE_COLUMN
        && !field.metadata.contains_key(COLUMN_MAPPING_ID_KEY);
    if mode == ColumnMappingMode::Id && !change_type {
        let id = field_id(field).ok_or_else(|| {
            Error::corrupt(
                SCHEMA_STRING,
                format!(
                    "column `{}` has no valid {COLUMN_MAPPING_ID_KEY} in id column mapping mode",
                    field.name
                ),
            )
        })?;
        arrow_field
            .metadata_mut()
            .insert(PARQUET_FIELD_ID_META_KEY, id.to_string());
    }
    Ok(arrow_field)
}

/// State while converting the type of one top-level-or-nested struct field to its physical form.
struct PhysicalCtx<'a> {
    /// The column mapping mode.
    mode: ColumnMappingMode,
    /// The `delta.columnMapping.nested.ids` of the nearest enclosing struct field.
    nested_ids: Option<&'a Map<String, Value>>,
    /// The physical path used as key into `nested_ids` (`<phys>.element.key`, ...).
    path: String,
}

impl PhysicalCtx<'_> {
    /// The child Arrow field `name` (element/key/value) of a list or map, with its nested id.
    fn child(&mut self, name: &str, data_type: &DataType, nullable: bool) -> Result<ArrowField> {
        let saved = self.path.len();
        self.path.push('.');
        self.path.push_str(name);
        let arrow_type = physical_arrow_type(data_type, self);
        let id = self
            .nested_ids
            .and_then(|m| m.get(&self.path))
            .and_then(Value::as_i64)
            .and_then(|id| i32::try_from(id).ok());
        self.path.truncate(saved);
        let mut field = ArrowField::new(name, arrow_type?, nullable);
        if let Some(id) = id {
            field
                .metadata_mut()
                .insert(PARQUET_FIELD_ID_META_KEY, id.to_string());
        }
        Ok(field)
    }
}

/// The physical Arrow type of a Delta type.
fn physical_arrow_type(data_type: &DataType, ctx: &mut PhysicalCtx<'_>) -> Result<ArrowDataType> {
    match data_type {
        DataType::Primitive(p) => p.to_arrow(),
        DataType::Struct(s) => {
            let fields = s
                .fields
                .iter()
                .map(|f| physical_arrow_field(f, ctx.mode))
                .collect::<Result<Vec<_>>>()?;
            Ok(ArrowDataType::Struct(ArrowFields::from(fields)))
        }
        DataType::Array(a) => {
            let element = ctx.child(LIST_ELEMENT_NAME, &a.element_type, a.contains_null)?;
            Ok(ArrowDataType::List(Arc::new(element)))
        }
        DataType::Map(m) => {
            let key = ctx.child(MAP_KEY_NAME, &m.key_type, false)?;
            let value = ctx.child(MAP_VALUE_NAME, &m.value_type, m.value_contains_null)?;
            Ok(map_type(key, value))
        }
    }
}

/// An Arrow map of `key` and `value` fields, entries named `key_value`, unsorted.
fn map_type(key: ArrowField, value: ArrowField) -> ArrowDataType {
    let entries = ArrowField::new(
        MAP_ENTRIES_NAME,
        ArrowDataType::Struct(ArrowFields::from(vec![key, value])),
        false,
    );
    ArrowDataType::Map(Arc::new(entries), false)
}

/// The logical Arrow type of `data_type`.
fn to_arrow_type(data_type: &DataType) -> Result<ArrowDataType> {
    match data_type {
        DataType::Primitive(p) => p.to_arrow(),
        DataType::Struct(s) => {
            let fields = s
                .fields
                .iter()
                .map(StructField::to_arrow_field)
                .collect::<Result<Vec<_>>>()?;
            Ok(ArrowDataType::Struct(ArrowFields::from(fields)))
        }
        DataType::Array(a) => {
            let element = ArrowField::new(
                LIST_ELEMENT_NAME,
                to_arrow_type(&a.element_type)?,
                a.contains_null,
            );
            Ok(ArrowDataType::List(Arc::new(element)))
        }
        DataType::Map(m) => {
            let key = ArrowField::new(MAP_KEY_NAME, to_arrow_type(&m.key_type)?, false);
            let value = ArrowField::new(
                MAP_VALUE_NAME,
                to_arrow_type(&m.value_type)?,
                m.value_contains_null,
            );
            Ok(map_type(key, value))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arrow -> Delta
// ---------------------------------------------------------------------------------------------

/// The Delta schema of an Arrow schema (for writers). Field and schema metadata are not copied.
///
/// Mapping: Null→void, Boolean, Int8/16/32/64→byte/short/integer/long, Float32/64→float/double,
/// Utf8/LargeUtf8/Utf8View→string, Binary/LargeBinary/BinaryView/FixedSizeBinary→binary,
/// Date32/Date64→date, Timestamp(any unit) with a zone→timestamp and without→timestamp_ntz,
/// Decimal32/64/128/256 (precision ≤ 38, scale ≥ 0)→decimal, List/LargeList/ListView/
/// LargeListView/FixedSizeList→array, Map→map, Struct→struct (a struct field with the
/// `ARROW:extension:name` `arrow.parquet.variant` becomes variant), Dictionary→its value type.
/// Anything else (unsigned integers, Float16, intervals, unions, ...) is [`Error::Unsupported`]
/// with kind `arrow data type`; writers must cast such columns first.
pub fn from_arrow_schema(schema: &ArrowSchema) -> Result<StructType> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| struct_field_from_arrow(f))
        .collect::<Result<Vec<_>>>()?;
    check_unique_names(&fields).map_err(|_| {
        Error::invalid("the arrow schema has column names that differ only in case")
    })?;
    Ok(StructType { fields })
}

/// A Delta struct field from an Arrow field.
fn struct_field_from_arrow(field: &ArrowField) -> Result<StructField> {
    let data_type = if field
        .metadata()
        .get(ARROW_EXTENSION_NAME_KEY)
        .is_some_and(|n| n == ARROW_VARIANT_EXTENSION_NAME)
    {
        DataType::Primitive(PrimitiveType::Variant)
    } else {
        data_type_from_arrow(field.data_type())?
    };
    Ok(StructField::new(
        field.name().clone(),
        data_type,
        field.is_nullable(),
    ))
}

/// The Delta type of an Arrow type (see [`from_arrow_schema`]).
pub fn data_type_from_arrow(data_type: &ArrowDataType) -> Result<DataType> {
    use ArrowDataType as A;
    let p = |p: PrimitiveType| Ok(DataType::Primitive(p));
    match data_type {
        A::Null => p(PrimitiveType::Void),
        A::Boolean => p(PrimitiveType::Boolean),
        A::Int8 => p(PrimitiveType::Byte),
        A::Int16 => p(PrimitiveType::Short),
        A::Int32 => p(PrimitiveType::Integer),
        A::Int64 => p(PrimitiveType::Long),
        A::Float32 => p(PrimitiveType::Float),
        A::Float64 => p(PrimitiveType::Double),
        A::Utf8 | A::LargeUtf8 | A::Utf8View => p(PrimitiveType::String),
        A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_) => {
            p(PrimitiveType::Binary)
        }
        A::Date32 | A::Date64 => p(PrimitiveType::Date),
        A::Timestamp(_, Some(_)) => p(PrimitiveType::Timestamp),
        A::Timestamp(_, None) => p(PrimitiveType::TimestampNtz),
        A::Decimal32(precision, scale)
        | A::Decimal64(precision, scale)
        | A::Decimal128(precision, scale)
        | A::Decimal256(precision, scale) => {
            let scale = u8::try_from(*scale).map_err(|_| Error::Unsupported {
                kind: "arrow data type",
                feature: data_type.to_string(),
            })?;
            check_decimal(*precision, scale).map_err(|_| Error::Unsupported {
                kind: "arrow data type",
                feature: data_type.to_string(),
            })?;
            p(PrimitiveType::Decimal {
                precision: *precision,
                scale,
            })
        }
        A::List(element)
        | A::LargeList(element)
        | A::ListView(element)
        | A::LargeListView(element)
        | A::FixedSizeList(element, _) => Ok(DataType::Array(Box::new(ArrayType {
            element_type: struct_field_from_arrow(element)?.data_type,
            contains_null: element.is_nullable(),
        }))),
        A::Map(entries, _) => {
            let A::Struct(kv) = entries.data_type() else {
                return Err(Error::invalid(
                    "an arrow map whose entries are not a struct",
                ));
            };
            let [key, value] = kv.iter().collect::<Vec<_>>()[..] else {
                return Err(Error::invalid(
                    "an arrow map whose entries do not have exactly two fields",
                ));
            };
            Ok(DataType::Map(Box::new(MapType {
                key_type: struct_field_from_arrow(key)?.data_type,
                value_type: struct_field_from_arrow(value)?.data_type,
                value_contains_null: value.is_nullable(),
            })))
        }
        A::Struct(fields) => {
            let fields = fields
                .iter()
                .map(|f| struct_field_from_arrow(f))
                .collect::<Result<Vec<_>>>()?;
            check_unique_names(&fields).map_err(|_| {
                Error::invalid("an arrow struct has field names that differ only in case")
            })?;
            Ok(DataType::Struct(StructType { fields }))
        }
        A::Dictionary(_, value) => data_type_from_arrow(value),
        other => Err(Error::Unsupported {
            kind: "arrow data type",
            feature: other.to_string(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Type widening
// ---------------------------------------------------------------------------------------------

/// Whether values of Arrow type `from` (in an old data file) can be read as `to` (the current
/// table type) under the type widening feature (PROTOCOL.md §16): byte→short→int→long,
/// float→double, byte/short/int→double, date→timestamp_ntz, decimal(p,s)→decimal(p+k1,s+k2) with
/// k1 ≥ k2 ≥ 0, byte/short/int→decimal(10+k1,k2) and long→decimal(20+k1,k2) with k1 ≥ k2 ≥ 0.
///
/// Equal types are trivially widenable. Lists, maps and structs widen element-wise (structs need
/// the same field names in the same order); nullability is not compared.
pub fn can_widen(from: &ArrowDataType, to: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    if from == to {
        return true;
    }
    match (from, to) {
        (A::Int8, A::Int16 | A::Int32 | A::Int64 | A::Float64)
        | (A::Int16, A::Int32 | A::Int64 | A::Float64)
        | (A::Int32, A::Int64 | A::Float64)
        | (A::Float32, A::Float64)
        | (A::Date32, A::Timestamp(TimeUnit::Microsecond, None)) => true,
        (A::Int8 | A::Int16 | A::Int32, A::Decimal128(p, s)) => integer_fits_decimal(10, *p, *s),
        (A::Int64, A::Decimal128(p, s)) => integer_fits_decimal(20, *p, *s),
        (A::Decimal128(p1, s1), A::Decimal128(p2, s2)) => {
            let (p1, s1, p2, s2) = (
                i16::from(*p1),
                i16::from(*s1),
                i16::from(*p2),
                i16::from(*s2),
            );
            let k1 = p2 - p1;
            let k2 = s2 - s1;
            s1 >= 0 && k2 >= 0 && k1 >= k2 && p2 <= i16::from(MAX_DECIMAL_PRECISION)
        }
        (A::List(a), A::List(b)) | (A::LargeList(a), A::LargeList(b)) => {
            can_widen(a.data_type(), b.data_type())
        }
        (A::Map(a, _), A::Map(b, _)) => can_widen(a.data_type(), b.data_type()),
        (A::Struct(a), A::Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.name() == y.name() && can_widen(x.data_type(), y.data_type()))
        }
        _ => false,
    }
}

/// Whether an integer type needing `digits` integral digits fits `decimal(p, s)` with
/// `p = digits + k1`, `s = k2`, `k1 >= k2 >= 0`.
fn integer_fits_decimal(digits: i16, p: u8, s: i8) -> bool {
    let (p, s) = (i16::from(p), i16::from(s));
    s >= 0 && p - digits >= s && p <= i16::from(MAX_DECIMAL_PRECISION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(json: &str) -> StructType {
        let schema = StructType::parse(json).expect("parse");
        let out = schema.to_json_string();
        let a: Value = serde_json::from_str(json).expect("json");
        let b: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(a, b, "round trip changed the schema");
        assert_eq!(StructType::parse(&out).expect("reparse"), schema);
        schema
    }

    const ALL_TYPES: &str = r#"{"type":"struct","fields":[
        {"name":"s","type":"string","nullable":true,"metadata":{}},
        {"name":"l","type":"long","nullable":false,"metadata":{"comment":"x"}},
        {"name":"i","type":"integer","nullable":true,"metadata":{}},
        {"name":"sh","type":"short","nullable":true,"metadata":{}},
        {"name":"b","type":"byte","nullable":true,"metadata":{}},
        {"name":"f","type":"float","nullable":true,"metadata":{}},
        {"name":"d","type":"double","nullable":true,"metadata":{}},
        {"name":"bo","type":"boolean","nullable":true,"metadata":{}},
        {"name":"bi","type":"binary","nullable":true,"metadata":{}},
        {"name":"da","type":"date","nullable":true,"metadata":{}},
        {"name":"ts","type":"timestamp","nullable":true,"metadata":{}},
        {"name":"tn","type":"timestamp_ntz","nullable":true,"metadata":{}},
        {"name":"de","type":"decimal(38,18)","nullable":true,"metadata":{}},
        {"name":"v","type":"void","nullable":true,"metadata":{}},
        {"name":"va","type":"variant","nullable":true,"metadata":{}},
        {"name":"arr","type":{"type":"array","elementType":{"type":"array","elementType":"integer","containsNull":false},"containsNull":true},"nullable":true,"metadata":{}},
        {"name":"m","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[{"name":"x","type":"decimal(5,2)","nullable":false,"metadata":{"delta.columnMapping.id":7}}]},"valueContainsNull":true},"nullable":true,"metadata":{}},
        {"name":"st","type":{"type":"struct","fields":[{"name":"inner","type":{"type":"map","keyType":"integer","valueType":"string","valueContainsNull":false},"nullable":true,"metadata":{"a":[1,{"b":null}],"c":"d"}}]},"nullable":false,"metadata":{"delta.invariants":"{\"expression\":{\"expression\":\"st IS NOT NULL\"}}"}}
    ]}"#;

    #[test]
    fn round_trips_every_type() {
        let schema = roundtrip(ALL_TYPES);
        assert_eq!(schema.fields.len(), 18);
        assert_eq!(
            schema.field("de").map(|f| &f.data_type),
            Some(&DataType::Primitive(PrimitiveType::Decimal {
                precision: 38,
                scale: 18
            }))
        );
        // Serde impls produce the same JSON.
        let via_serde: StructType = serde_json::from_str(ALL_TYPES).expect("serde");
        assert_eq!(via_serde, schema);
        assert_eq!(
            serde_json::to_value(&schema).expect("serde"),
            schema.to_json_value()
        );
    }

    #[test]
    fn serialises_in_spark_key_order() {
        let schema = StructType::new([StructField::new(
            "a",
            ArrayType::new(MapType::new(DataType::STRING, DataType::LONG, true), false),
            true,
        )]);
        assert_eq!(
            schema.to_json_string(),
            r#"{"type":"struct","fields":[{"name":"a","type":{"type":"array","elementType":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"containsNull":false},"nullable":true,"metadata":{}}]}"#
        );
    }

    #[test]
    fn decimal_with_space_and_default() {
        assert_eq!(
            PrimitiveType::parse("decimal(10, 2)").expect("parse"),
            PrimitiveType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            PrimitiveType::parse("decimal").expect("parse"),
            PrimitiveType::Decimal {
                precision: 10,
                scale: 0
            }
        );
        assert_eq!(
            PrimitiveType::Decimal {
                precision: 10,
                scale: 2
            }
            .to_string(),
            "decimal(10,2)"
        );
        for bad in [
            "decimal(39,0)",
            "decimal(5,6)",
            "decimal(0,0)",
            "decimal(a,1)",
            "decimal(5)",
        ] {
            assert!(
                matches!(PrimitiveType::parse(bad), Err(Error::Corrupt { .. })),
                "{bad}"
            );
        }
        assert!(PrimitiveType::decimal(39, 1).is_err());
    }

    #[test]
    fn unknown_types_are_unsupported() {
        let err = StructType::parse(
            r#"{"type":"struct","fields":[{"name":"a","type":"interval","nullable":true,"metadata":{}}]}"#,
        )
        .expect_err("unknown type");
        assert!(
            matches!(&err, Error::Unsupported { kind: "data type", feature } if feature == "interval"),
            "{err}"
        );
        let err = StructType::parse(
            r#"{"type":"struct","fields":[{"name":"a","type":{"type":"udt","class":"x"},"nullable":true,"metadata":{}}]}"#,
        )
        .expect_err("udt");
        assert!(matches!(
            err,
            Error::Unsupported {
                kind: "data type",
                ..
            }
        ));
    }

    #[test]
    fn malformed_schemas_are_corrupt() {
        for bad in [
            "not json",
            r#""long""#,
            r#"{"type":"struct"}"#,
            r#"{"type":"struct","fields":[{"name":"a","nullable":true}]}"#,
            r#"{"type":"struct","fields":[{"name":"a","type":"long"}]}"#,
            r#"{"type":"struct","fields":[{"name":"a","type":{"type":"array","elementType":"long"},"nullable":true}]}"#,
            r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":true},{"name":"A","type":"long","nullable":true}]}"#,
            r#"{"type":"struct","fields":[{"name":"a","type":42,"nullable":true}]}"#,
        ] {
            match StructType::parse(bad) {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, "schemaString", "{bad}"),
                other => panic!("{bad}: expected corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_metadata_defaults_to_empty() {
        let s = StructType::parse(
            r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":true}]}"#,
        )
        .expect("parse");
        assert!(s.fields[0].metadata.is_empty());
    }

    #[test]
    fn field_lookup_prefers_exact_case() {
        let s = StructType::new([
            StructField::new("Name", DataType::STRING, true),
            StructField::new("other", DataType::LONG, true),
        ]);
        assert_eq!(s.field("Name").map(|f| f.name.as_str()), Some("Name"));
        assert_eq!(s.field("NAME").map(|f| f.name.as_str()), Some("Name"));
        assert_eq!(s.field("OTHER").map(|f| f.name.as_str()), Some("other"));
        assert!(s.field("missing").is_none());
        // Exact match wins over an earlier case-insensitive one (built by hand; parse forbids it).
        let s = StructType::new([
            StructField::new("a", DataType::STRING, true),
            StructField::new("A", DataType::LONG, true),
        ]);
        assert_eq!(s.index_of("A"), Some(1));
        let nested = StructType::new([StructField::new(
            "outer",
            StructType::new([StructField::new("Inner", DataType::LONG, true)]),
            true,
        )]);
        assert_eq!(
            nested
                .field_at_path(&["OUTER", "inner"])
                .map(|f| f.name.as_str()),
            Some("Inner")
        );
    }

    #[test]
    fn column_mapping_mode_from_configuration() {
        let mut config = HashMap::new();
        assert_eq!(
            ColumnMappingMode::from_configuration(&config).expect("mode"),
            ColumnMappingMode::None
        );
        config.insert(COLUMN_MAPPING_MODE_KEY.to_string(), "name".to_string());
        assert_eq!(
            ColumnMappingMode::from_configuration(&config).expect("mode"),
            ColumnMappingMode::Name
        );
        config.insert(COLUMN_MAPPING_MODE_KEY.to_string(), "ID".to_string());
        assert_eq!(
            ColumnMappingMode::from_configuration(&config).expect("mode"),
            ColumnMappingMode::Id
        );
        config.insert(COLUMN_MAPPING_MODE_KEY.to_string(), "bogus".to_string());
        assert!(matches!(
            ColumnMappingMode::from_configuration(&config),
            Err(Error::Unsupported {
                kind: "column mapping mode",
                ..
            })
        ));
    }

    #[test]
    fn logical_arrow_schema() {
        let schema = StructType::parse(ALL_TYPES).expect("parse");
        let arrow = to_arrow_schema(&schema).expect("arrow");
        let t = |name: &str| {
            arrow
                .field_with_name(name)
                .expect("field")
                .data_type()
                .clone()
        };
        assert_eq!(t("s"), ArrowDataType::Utf8);
        assert_eq!(t("l"), ArrowDataType::Int64);
        assert!(!arrow.field_with_name("l").expect("l").is_nullable());
        assert_eq!(t("i"), ArrowDataType::Int32);
        assert_eq!(t("sh"), ArrowDataType::Int16);
        assert_eq!(t("b"), ArrowDataType::Int8);
        assert_eq!(t("f"), ArrowDataType::Float32);
        assert_eq!(t("d"), ArrowDataType::Float64);
        assert_eq!(t("bo"), ArrowDataType::Boolean);
        assert_eq!(t("bi"), ArrowDataType::Binary);
        assert_eq!(t("da"), ArrowDataType::Date32);
        assert_eq!(
            t("ts"),
            ArrowDataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            t("tn"),
            ArrowDataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(t("de"), ArrowDataType::Decimal128(38, 18));
        assert_eq!(t("v"), ArrowDataType::Null);
        assert_eq!(
            t("va"),
            ArrowDataType::Struct(ArrowFields::from(vec![
                ArrowField::new("metadata", ArrowDataType::Binary, false),
                ArrowField::new("value", ArrowDataType::Binary, false),
            ]))
        );
        assert_eq!(
            t("arr"),
            ArrowDataType::List(Arc::new(ArrowField::new(
                "element",
                ArrowDataType::List(Arc::new(ArrowField::new(
                    "element",
                    ArrowDataType::Int32,
                    false
                ))),
                true
            )))
        );
        assert_eq!(
            t("m"),
            map_type(
                ArrowField::new("key", ArrowDataType::Utf8, false),
                ArrowField::new(
                    "value",
                    ArrowDataType::Struct(ArrowFields::from(vec![ArrowField::new(
                        "x",
                        ArrowDataType::Decimal128(5, 2),
                        false
                    )])),
                    true
                )
            )
        );
        let ArrowDataType::Map(entries, sorted) = t("m") else {
            panic!("not a map");
        };
        assert!(!sorted);
        assert_eq!(entries.name(), "key_value");
        assert!(arrow.fields().iter().all(|f| f.metadata().is_empty()));
    }

    #[test]
    fn arrow_round_trip() {
        // Everything but variant (no Arrow counterpart without the extension) and metadata.
        let schema = StructType::parse(ALL_TYPES).expect("parse");
        let mut expected = schema.clone();
        strip_metadata(&mut expected);
        let back = from_arrow_schema(&to_arrow_schema(&schema).expect("arrow")).expect("back");
        let mut want = expected.clone();
        let va = want.index_of("va").expect("va");
        want.fields[va].data_type = DataType::Struct(StructType::new([
            StructField::new("metadata", PrimitiveType::Binary, false),
            StructField::new("value", PrimitiveType::Binary, false),
        ]));
        assert_eq!(back, want);

        // The variant extension is honoured.
        let f = ArrowField::new("v", PrimitiveType::Variant.to_arrow().expect("arrow"), true)
            .with_metadata(
                [(
                    ARROW_EXTENSION_NAME_KEY.to_string(),
                    ARROW_VARIANT_EXTENSION_NAME.to_string(),
                )]
                .into_iter()
                .collect::<HashMap<_, _>>(),
            );
        let s = from_arrow_schema(&ArrowSchema::new(vec![f])).expect("variant");
        assert_eq!(
            s.fields[0].data_type,
            DataType::Primitive(PrimitiveType::Variant)
        );
    }

    fn strip_metadata(s: &mut StructType) {
        fn strip_type(t: &mut DataType) {
            match t {
                DataType::Primitive(_) => {}
                DataType::Struct(s) => strip_metadata(s),
                DataType::Array(a) => strip_type(&mut a.element_type),
                DataType::Map(m) => {
                    strip_type(&mut m.key_type);
                    strip_type(&mut m.value_type);
                }
            }
        }
        for f in &mut s.fields {
            f.metadata.clear();
            strip_type(&mut f.data_type);
        }
    }

    #[test]
    fn from_arrow_variants() {
        use ArrowDataType as A;
        let check = |a: A, d: DataType| {
            assert_eq!(data_type_from_arrow(&a).expect("convert"), d, "{a}");
        };
        check(A::LargeUtf8, DataType::STRING);
        check(A::Utf8View, DataType::STRING);
        check(A::LargeBinary, PrimitiveType::Binary.into());
        check(
            A::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            PrimitiveType::Timestamp.into(),
        );
        check(
            A::Timestamp(TimeUnit::Millisecond, None),
            PrimitiveType::TimestampNtz.into(),
        );
        check(
            A::Dictionary(Box::new(A::Int32), Box::new(A::Utf8)),
            DataType::STRING,
        );
        check(
            A::LargeList(Arc::new(ArrowField::new("item", A::Int64, false))),
            ArrayType::new(DataType::LONG, false).into(),
        );
        check(
            A::Decimal256(20, 3),
            PrimitiveType::Decimal {
                precision: 20,
                scale: 3,
            }
            .into(),
        );
        for bad in [
            A::UInt32,
            A::Float16,
            A::Decimal128(10, -1),
            A::Decimal256(40, 0),
        ] {
            assert!(
                matches!(
                    data_type_from_arrow(&bad),
                    Err(Error::Unsupported {
                        kind: "arrow data type",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    /// A column-mapped schema as Spark writes it, with IcebergCompatV2 nested ids.
    fn mapped_schema() -> StructType {
        let cm = |f: StructField, id: i64, phys: &str| {
            f.with_metadata_entry(COLUMN_MAPPING_ID_KEY, id)
                .with_metadata_entry(COLUMN_MAPPING_PHYSICAL_NAME_KEY, phys)
        };
        StructType::new([
            cm(StructField::new("id", DataType::LONG, false), 1, "col-a"),
            cm(
                StructField::new(
                    "rec",
                    StructType::new([cm(
                        StructField::new("x", DataType::INTEGER, true),
                        3,
                        "col-x",
                    )]),
                    true,
                ),
                2,
                "col-b",
            ),
            cm(
                StructField::new(
                    "tags",
                    MapType::new(
                        DataType::STRING,
                        ArrayType::new(
                            StructType::new([cm(
                                StructField::new("y", DataType::DOUBLE, true),
                                5,
                                "col-y",
                            )]),
                            true,
                        ),
                        true,
                    ),
                    true,
                ),
                4,
                "col-c",
            )
            .with_metadata_entry(
                COLUMN_MAPPING_NESTED_IDS_KEY,
                json!({"col-c.key": 6, "col-c.value": 7, "col-c.value.element": 8}),
            ),
        ])
    }

    #[test]
    fn physical_schema_name_mode() {
        let schema = mapped_schema();
        let phys = to_physical_arrow_schema(&schema, ColumnMappingMode::Name).expect("physical");
        let names: Vec<_> = phys.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["col-a", "col-b", "col-c"]);
        assert!(phys.fields().iter().all(|f| f.metadata().is_empty()));
        let ArrowDataType::Struct(inner) = phys.field(1).data_type() else {
            panic!("not a struct");
        };
        assert_eq!(inner[0].name(), "col-x");
        // The value of the map is a list of structs whose field is renamed too.
        let ArrowDataType::Map(entries, _) = phys.field(2).data_type() else {
            panic!("not a map");
        };
        let ArrowDataType::Struct(kv) = entries.data_type() else {
            panic!("entries");
        };
        assert_eq!(kv[0].name(), "key");
        let ArrowDataType::List(element) = kv[1].data_type() else {
            panic!("list");
        };
        let ArrowDataType::Struct(y) = element.data_type() else {
            panic!("struct");
        };
        assert_eq!(y[0].name(), "col-y");

        // None mode is the logical schema.
        assert_eq!(
            to_physical_arrow_schema(&schema, ColumnMappingMode::None).expect("none"),
            to_arrow_schema(&schema).expect("logical")
        );
        // Missing physical name falls back to the logical name.
        let plain = StructType::new([StructField::new("p", DataType::LONG, true)]);
        assert_eq!(
            physical_name(&plain.fields[0], ColumnMappingMode::Name),
            "p"
        );
    }

    #[test]
    fn physical_schema_id_mode() {
        let schema = mapped_schema();
        let phys = to_physical_arrow_schema(&schema, ColumnMappingMode::Id).expect("physical");
        let id = |f: &ArrowField| f.metadata().get(PARQUET_FIELD_ID_META_KEY).cloned();
        assert_eq!(id(phys.field(0)).as_deref(), Some("1"));
        assert_eq!(phys.field(0).name(), "col-a");
        let ArrowDataType::Struct(inner) = phys.field(1).data_type() else {
            panic!("not a struct");
        };
        assert_eq!(id(&inner[0]).as_deref(), Some("3"));
        let ArrowDataType::Map(entries, _) = phys.field(2).data_type() else {
            panic!("not a map");
        };
        let ArrowDataType::Struct(kv) = entries.data_type() else {
            panic!("entries");
        };
        assert_eq!(id(&kv[0]).as_deref(), Some("6"));
        assert_eq!(id(&kv[1]).as_deref(), Some("7"));
        let ArrowDataType::List(element) = kv[1].data_type() else {
            panic!("list");
        };
        assert_eq!(id(element).as_deref(), Some("8"));
        let ArrowDataType::Struct(y) = element.data_type() else {
            panic!("struct");
        };
        assert_eq!(id(&y[0]).as_deref(), Some("5"));
        assert_eq!(y[0].name(), "col-y");

        let no_id = StructType::new([StructField::new("p", DataType::LONG, true)]);
        assert!(matches!(
            to_physical_arrow_schema(&no_id, ColumnMappingMode::Id),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(field_id(&schema.fields[2]), Some(4));
    }

    #[test]
    fn widening_rules() {
        use ArrowDataType as A;
        let ntz = A::Timestamp(TimeUnit::Microsecond, None);
        for (from, to) in [
            (A::Int8, A::Int16),
            (A::Int8, A::Int64),
            (A::Int16, A::Int32),
            (A::Int32, A::Int64),
            (A::Float32, A::Float64),
            (A::Int32, A::Float64),
            (A::Int8, A::Float64),
            (A::Date32, ntz.clone()),
            (A::Decimal128(10, 2), A::Decimal128(12, 4)),
            (A::Decimal128(10, 2), A::Decimal128(12, 2)),
            (A::Int32, A::Decimal128(10, 0)),
            (A::Int16, A::Decimal128(12, 2)),
            (A::Int64, A::Decimal128(20, 0)),
            (A::Int64, A::Decimal128(25, 5)),
            (A::Utf8, A::Utf8),
        ] {
            assert!(can_widen(&from, &to), "{from} -> {to}");
        }
        for (from, to) in [
            (A::Int64, A::Int32),
            (A::Int64, A::Float64),
            (A::Float64, A::Float32),
            (
                A::Date32,
                A::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            (A::Decimal128(10, 2), A::Decimal128(11, 4)),
            (A::Decimal128(10, 2), A::Decimal128(12, 1)),
            (A::Int32, A::Decimal128(10, 1)),
            (A::Int64, A::Decimal128(19, 0)),
            (A::Int32, A::Utf8),
        ] {
            assert!(!can_widen(&from, &to), "{from} -> {to}");
        }
        let list = |t| A::List(Arc::new(ArrowField::new("element", t, true)));
        assert!(can_widen(&list(A::Int32), &list(A::Int64)));
        assert!(!can_widen(&list(A::Int64), &list(A::Int32)));
        let st = |t| A::Struct(ArrowFields::from(vec![ArrowField::new("a", t, true)]));
        assert!(can_widen(&st(A::Float32), &st(A::Float64)));
        assert!(!can_widen(&st(A::Float64), &st(A::Float32)));
    }

    /// The conformance fixtures folder, or `None` (after printing why) when it is absent outside CI.
    fn conformance_dir() -> Option<std::path::PathBuf> {
        let dir = crate::fixtures::conformance_root();
        if dir.is_dir() {
            return Some(dir);
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance fixtures missing at {} (required when CI=true)",
            dir.display()
        );
        println!(
            "skipping: conformance fixtures not found at {}",
            dir.display()
        );
        None
    }

    /// Every `_delta_log/*.json` below `dir`.
    fn commit_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                commit_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "json")
                && path
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "_delta_log")
            {
                out.push(path);
            }
        }
    }

    #[test]
    fn conformance_schemas_round_trip() {
        let Some(dir) = conformance_dir() else {
            return;
        };
        let mut files = Vec::new();
        commit_files(&dir, &mut files);
        files.sort();
        let mut checked = 0usize;
        let mut byte_exact = 0usize;
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read commit");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Ok(action) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let Some(schema_string) = action
                    .get("metaData")
                    .and_then(|m| m.get("schemaString"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                let schema = StructType::parse(schema_string)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let original: Value = serde_json::from_str(schema_string).expect("json");
                assert_eq!(
                    schema.to_json_value(),
                    original,
                    "{} did not round trip",
                    file.display()
                );
                if schema.to_json_string() == schema_string {
                    byte_exact += 1;
                }
                to_arrow_schema(&schema).expect("logical arrow schema");
                let config: HashMap<String, String> = action
                    .get("metaData")
                    .and_then(|m| m.get("configuration"))
                    .and_then(|c| serde_json::from_value(c.clone()).ok())
                    .unwrap_or_default();
                let mode = ColumnMappingMode::from_configuration(&config).expect("mode");
                to_physical_arrow_schema(&schema, mode)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                checked += 1;
            }
        }
        println!(
            "checked {checked} schemas in {} commit files, {byte_exact} re-serialised byte-exact",
            files.len()
        );
        assert!(checked > 100, "only {checked} schemas found");
    }
}
