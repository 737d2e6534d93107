//! Column mapping on the write side (PROTOCOL.md §11).
//!
//! With `delta.columnMapping.mode` set to `name` or `id`, every field of the schema (nested
//! struct fields too) carries a `delta.columnMapping.id` that is never reused and a
//! `delta.columnMapping.physicalName`; data files, statistics and partition values use the
//! physical names (and the ids as parquet field ids), and `delta.columnMapping.maxColumnId`
//! records the largest id handed out. Because the files never name a column by its logical
//! name, renaming or dropping a column is a metadata-only commit:
//!
//! - a new table gets ids from 1 and fresh physical names `col-<uuid>`;
//! - columns added later (schema merge on write or MERGE) get the next ids and fresh names,
//!   so a column dropped and added again under the same name never sees the old values;
//! - turning `name` mode on for an existing table (Spark's only upgrade path) keeps the
//!   current names as physical names, so the existing files stay readable as they are;
//! - [`Table::rename_column`] changes a logical name (and `partitionColumns`,
//!   `delta.dataSkippingStatsColumns`); [`Table::drop_columns`] removes fields from the
//!   schema while their values stay, unread, in the files until they are rewritten.

use serde_json::Value;

use crate::action::Metadata;
use crate::clock::Clock;
use crate::schema::{
    COLUMN_MAPPING_ID_KEY, COLUMN_MAPPING_MODE_KEY, COLUMN_MAPPING_PHYSICAL_NAME_KEY,
    ColumnMappingMode, DataType, StructField, StructType,
};
use crate::table::Table;
use crate::transaction::Committed;
use crate::{Error, Result};

/// The table property holding the largest column mapping id handed out.
pub const MAX_COLUMN_ID_KEY: &str = "delta.columnMapping.maxColumnId";

/// The property listing the columns that get statistics.
const STATS_COLUMNS_KEY: &str = "delta.dataSkippingStatsColumns";

/// Where the physical names of newly mapped fields come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhysicalNames {
    /// `col-<uuid>`: new tables and new columns.
    Fresh,
    /// The current logical name: existing fields when `name` mode is turned on, because the
    /// files already written name their columns so.
    Logical,
}

/// The column mapping mode `metadata` configures.
pub(crate) fn mode_of(metadata: &Metadata) -> Result<ColumnMappingMode> {
    metadata
        .property(COLUMN_MAPPING_MODE_KEY)
        .map_or(Ok(ColumnMappingMode::None), ColumnMappingMode::parse)
}

/// The largest column mapping id in use: `delta.columnMapping.maxColumnId` or the largest id
/// in `schema`, whichever is larger (a table written by an engine that forgot the property
/// must not get duplicate ids).
pub(crate) fn max_column_id(metadata: &Metadata, schema: &StructType) -> i64 {
    fn walk(fields: &[StructField], max: &mut i64) {
        for field in fields {
            if let Some(id) = field
                .metadata
                .get(COLUMN_MAPPING_ID_KEY)
                .and_then(Value::as_i64)
            {
                *max = (*max).max(id);
            }
            walk_type(&field.data_type, max);
        }
    }
    fn walk_type(data_type: &DataType, max: &mut i64) {
        match data_type {
            DataType::Struct(s) => walk(&s.fields, max),
            DataType::Array(a) => walk_type(&a.element_type, max),
            DataType::Map(m) => {
                walk_type(&m.key_type, max);
                walk_type(&m.value_type, max);
            }
            DataType::Primitive(_) => {}
        }
    }
    let mut max = metadata
        .property(MAX_COLUMN_ID_KEY)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    walk(&schema.fields, &mut max);
    max
}

/// Give every field of `fields` without a column mapping id (nested struct fields too, inside
/// arrays and maps as well) the next id after `*max_id` and a physical name.
pub(crate) fn assign(
    fields: &mut [StructField],
    max_id: &mut i64,
    names: PhysicalNames,
    clock: &dyn Clock,
) {
    for field in fields {
        if !field.metadata.contains_key(COLUMN_MAPPING_ID_KEY) {
            *max_id += 1;
            field
                .metadata
                .insert(COLUMN_MAPPING_ID_KEY.to_owned(), Value::from(*max_id));
        }
        if !field
            .metadata
            .contains_key(COLUMN_MAPPING_PHYSICAL_NAME_KEY)
        {
            let physical = match names {
                PhysicalNames::Fresh => format!("col-{}", clock.unique_id()),
                PhysicalNames::Logical => field.name.clone(),
            };
            field.metadata.insert(
                COLUMN_MAPPING_PHYSICAL_NAME_KEY.to_owned(),
                Value::from(physical),
            );
        }
        assign_type(&mut field.data_type, max_id, names, clock);
    }
}

fn assign_type(
    data_type: &mut DataType,
    max_id: &mut i64,
    names: PhysicalNames,
    clock: &dyn Clock,
) {
    match data_type {
        DataType::Struct(s) => assign(&mut s.fields, max_id, names, clock),
        DataType::Array(a) => assign_type(&mut a.element_type, max_id, names, clock),
        DataType::Map(m) => {
            assign_type(&mut m.key_type, max_id, names, clock);
            assign_type(&mut m.value_type, max_id, names, clock);
        }
        DataType::Primitive(_) => {}
    }
}

/// Map every field of a new table's `schema` when `metadata` asks for column mapping, and
/// record the largest id in `metadata`.
///
/// # Errors
/// [`Error::Unsupported`] for an unknown mode.
pub(crate) fn map_new_table(
    metadata: &mut Metadata,
    schema: &mut StructType,
    clock: &dyn Clock,
) -> Result<ColumnMappingMode> {
    let mode = mode_of(metadata)?;
    if mode != ColumnMappingMode::None {
        let mut max_id = max_column_id(metadata, schema);
        assign(&mut schema.fields, &mut max_id, PhysicalNames::Fresh, clock);
        set_schema(metadata, schema, max_id);
    }
    Ok(mode)
}

/// Append `added` (new nullable columns) to `schema` and to `metadata`'s schema string, mapping
/// them first when the table uses column mapping.
///
/// # Errors
/// [`Error::Unsupported`] for an unknown mode.
pub(crate) fn add_columns(
    metadata: &mut Metadata,
    schema: &mut StructType,
    mut added: Vec<StructField>,
    clock: &dyn Clock,
) -> Result<()> {
    if mode_of(metadata)? == ColumnMappingMode::None {
        schema.fields.append(&mut added);
        metadata.schema_string = schema.to_json_string();
        return Ok(());
    }
    let mut max_id = max_column_id(metadata, schema);
    assign(&mut added, &mut max_id, PhysicalNames::Fresh, clock);
    schema.fields.append(&mut added);
    set_schema(metadata, schema, max_id);
    Ok(())
}

/// Turn `name` mode on for a table that has no column mapping: existing fields keep their
/// names as physical names.
pub(crate) fn enable_name_mode(
    metadata: &mut Metadata,
    schema: &mut StructType,
    clock: &dyn Clock,
) {
    let mut max_id = max_column_id(metadata, schema);
    assign(
        &mut schema.fields,
        &mut max_id,
        PhysicalNames::Logical,
        clock,
    );
    metadata.configuration.insert(
        COLUMN_MAPPING_MODE_KEY.to_owned(),
        Some(ColumnMappingMode::Name.as_str().to_owned()),
    );
    set_schema(metadata, schema, max_id);
}

fn set_schema(metadata: &mut Metadata, schema: &StructType, max_id: i64) {
    metadata.schema_string = schema.to_json_string();
    metadata
        .configuration
        .insert(MAX_COLUMN_ID_KEY.to_owned(), Some(max_id.to_string()));
}

/// A column path: `a` for a top-level column (even when its name holds dots), else the
/// dot-separated path of a nested struct field.
fn column_path(schema: &StructType, column: &str) -> Vec<String> {
    if schema.field(column).is_some() || !column.contains('.') {
        vec![column.to_owned()]
    } else {
        column.split('.').map(str::to_owned).collect()
    }
}

/// The fields of the struct that holds the field at `path`, and the field's index in them.
fn parent_of<'a>(
    schema: &'a mut StructType,
    path: &[String],
    column: &str,
) -> Result<(&'a mut Vec<StructField>, usize)> {
    let unknown = || Error::invalid(format!("column `{column}` is not in the table schema"));
    let (last, parents) = path.split_last().ok_or_else(unknown)?;
    let mut fields = &mut schema.fields;
    for name in parents {
        let field = fields
            .iter_mut()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(unknown)?;
        fields = match &mut field.data_type {
            DataType::Struct(s) => &mut s.fields,
            _ => {
                return Err(Error::invalid(format!(
                    "column `{column}`: `{name}` is not a struct (fields inside arrays and maps cannot be renamed or dropped)"
                )));
            }
        };
    }
    let index = fields
        .iter()
        .position(|f| f.name.eq_ignore_ascii_case(last))
        .ok_or_else(unknown)?;
    Ok((fields, index))
}

/// Constraints (`delta.constraints.*`) whose expression reads the column at dotted `path` or
/// a field inside it.
fn constraints_reading(metadata: &Metadata, path: &str) -> Vec<String> {
    let path = path.to_ascii_lowercase();
    let mut names: Vec<String> = metadata
        .configuration
        .iter()
        .filter_map(|(key, value)| {
            let constraint = key.strip_prefix("delta.constraints.")?;
            let expression = crate::expression::parse(value.as_deref()?).ok()?;
            expression
                .columns()
                .iter()
                .any(|c| {
                    let c = c.to_ascii_lowercase();
                    c == path || c.starts_with(&format!("{path}."))
                })
                .then(|| constraint.to_owned())
        })
        .collect();
    names.sort();
    names
}

/// Refuse a schema change on a table without column mapping, naming the way to turn it on.
fn require_mapping(metadata: &Metadata, what: &str) -> Result<()> {
    if mode_of(metadata)? == ColumnMappingMode::None {
        return Err(Error::invalid(format!(
            "{what} needs column mapping: set delta.columnMapping.mode = name on the table first"
        )));
    }
    Ok(())
}

/// Rewrite the top-level names in `delta.dataSkippingStatsColumns`: `f` maps one name (or
/// drops it by returning `None`).
fn edit_stats_columns(metadata: &mut Metadata, f: impl Fn(&str) -> Option<String>) {
    let Some(list) = metadata.property(STATS_COLUMNS_KEY) else {
        return;
    };
    let edited: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter_map(|c| {
            let (top, rest) = c.split_once('.').map_or((c, None), |(t, r)| (t, Some(r)));
            let top = f(top.trim_matches('`'))?;
            Some(rest.map_or_else(|| top.clone(), |r| format!("{top}.{r}")))
        })
        .collect();
    metadata
        .configuration
        .insert(STATS_COLUMNS_KEY.to_owned(), Some(edited.join(",")));
}

impl Table {
    /// Rename column `column` (a top-level column, or `a.b` for a field of struct `a`) to
    /// `new_name`, in a metadata-only commit (operation `RENAME COLUMN`). Needs column mapping;
    /// partition columns and `delta.dataSkippingStatsColumns` follow the new name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without column mapping, for an unknown column, a name already
    /// taken in the same struct, or a column a CHECK constraint reads; conflicts.
    pub async fn rename_column(&self, column: &str, new_name: &str) -> Result<Committed> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        require_mapping(&metadata, "RENAME COLUMN")?;
        if new_name.is_empty() {
            return Err(Error::invalid("RENAME COLUMN: the new name is empty"));
        }
        let mut schema = snapshot.schema().clone();
        let path = column_path(&schema, column);
        let (fields, index) = parent_of(&mut schema, &path, column)?;
        let old_name = fields[index].name.clone();
        if fields
            .iter()
            .enumerate()
            .any(|(i, f)| i != index && f.name.eq_ignore_ascii_case(new_name))
        {
            return Err(Error::invalid(format!(
                "RENAME COLUMN: a column named `{new_name}` already exists"
            )));
        }
        fields[index].name = new_name.to_owned();
        let old_path = path.join(".");
        let readers = constraints_reading(&metadata, &old_path);
        if !readers.is_empty() {
            return Err(Error::invalid(format!(
                "RENAME COLUMN: column `{old_path}` is read by constraint(s) {}; drop them first",
                readers.join(", ")
            )));
        }
        if path.len() == 1 {
            for partition in &mut metadata.partition_columns {
                if partition.eq_ignore_ascii_case(&old_name) {
                    new_name.clone_into(partition);
                }
            }
            edit_stats_columns(&mut metadata, |c| {
                Some(if c.eq_ignore_ascii_case(&old_name) {
                    new_name.to_owned()
                } else {
                    c.to_owned()
                })
            });
        }
        metadata.schema_string = schema.to_json_string();
        let mut new_path = path;
        if let Some(last) = new_path.last_mut() {
            new_name.clone_into(last);
        }
        let mut txn = self
            .transaction(&snapshot)
            .with_operation("RENAME COLUMN")
            .with_parameter("oldColumnPath", old_path)
            .with_parameter("newColumnPath", new_path.join("."));
        txn.set_metadata(metadata);
        txn.commit().await
    }

    /// Drop `columns` (top-level columns, or `a.b` for fields of struct `a`) in a metadata-only
    /// commit (operation `DROP COLUMNS`). Needs column mapping. Their values stay in the data
    /// files, unread, until the files are rewritten (OPTIMIZE, DELETE, UPDATE, MERGE).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without column mapping, for an unknown column, a partition
    /// column, a column a CHECK constraint reads, or when no data column (or no field of a
    /// struct) would be left; conflicts.
    pub async fn drop_columns(&self, columns: &[&str]) -> Result<Committed> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        require_mapping(&metadata, "DROP COLUMNS")?;
        if columns.is_empty() {
            return Err(Error::invalid("DROP COLUMNS: no column given"));
        }
        let mut schema = snapshot.schema().clone();
        let mut dropped_top = Vec::new();
        for column in columns {
            let path = column_path(&schema, column);
            let joined = path.join(".");
            let readers = constraints_reading(&metadata, &joined);
            if !readers.is_empty() {
                return Err(Error::invalid(format!(
                    "DROP COLUMNS: column `{joined}` is read by constraint(s) {}; drop them first",
                    readers.join(", ")
                )));
            }
            let (fields, index) = parent_of(&mut schema, &path, column)?;
            if path.len() == 1 {
                let name = fields[index].name.clone();
                if metadata
                    .partition_columns
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(&name))
                {
                    return Err(Error::invalid(format!(
                        "DROP COLUMNS: `{name}` is a partition column"
                    )));
                }
                dropped_top.push(name);
            } else if fields.len() == 1 {
                return Err(Error::invalid(format!(
                    "DROP COLUMNS: `{column}` is the last field of its struct; drop the struct instead"
                )));
            }
            fields.remove(index);
        }
        if schema.fields.len() <= metadata.partition_columns.len() {
            return Err(Error::invalid(
                "DROP COLUMNS: a table needs at least one column that is not a partition column",
            ));
        }
        edit_stats_columns(&mut metadata, |c| {
            (!dropped_top.iter().any(|d| d.eq_ignore_ascii_case(c))).then(|| c.to_owned())
        });
        metadata.schema_string = schema.to_json_string();
        let names: Vec<&str> = columns.to_vec();
        let mut txn = self
            .transaction(&snapshot)
            .with_operation("DROP COLUMNS")
            .with_parameter("columns", serde_json::to_string(&names).unwrap_or_default());
        txn.set_metadata(metadata);
        txn.commit().await
    }
}
