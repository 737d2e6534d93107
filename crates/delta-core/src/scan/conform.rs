//! Turning arrays read from a data file into the table's logical types. Pure.
//!
//! Parquet files name columns physically (column mapping), nest lists and maps under
//! writer-specific field names (`element`, `array`, `key_value`, `entries`), may store
//! timestamps as INT96 or milliseconds, may predate a type widening, and may lack columns
//! added later. [`conform`] rebuilds an array with exactly the logical field's type and
//! names, matching struct children by physical name or field id; a missing child is NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, MapArray, StructArray, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType as ArrowType, Field, FieldRef, Fields};

use crate::schema::{ColumnMappingMode, DataType, StructField, StructType};
use crate::{Error, Result};

/// Parquet's key for field ids in Arrow field metadata.
pub(crate) const PARQUET_FIELD_ID: &str = "PARQUET:field_id";

/// Find the child of `fields` that stores logical `field`: by field id in id mode, else by
/// physical name (exact, then case-insensitive).
pub(crate) fn find_physical(
    fields: &Fields,
    field: &StructField,
    mode: ColumnMappingMode,
) -> Option<usize> {
    if mode == ColumnMappingMode::Id
        && let Some(id) = field.field_id()
    {
        let wanted = id.to_string();
        if let Some(i) = fields
            .iter()
            .position(|f| f.metadata().get(PARQUET_FIELD_ID) == Some(&wanted))
        {
            return Some(i);
        }
    }
    let name = field.physical_name(mode);
    fields.iter().position(|f| f.name() == name).or_else(|| {
        fields
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

/// Rebuild `array` (as read from a file) with the logical type of `field`.
///
/// # Errors
/// [`Error::Corrupt`] naming `file` when the stored type cannot become the logical type.
pub(crate) fn conform(
    array: &ArrayRef,
    field: &StructField,
    target: &Field,
    mode: ColumnMappingMode,
    file: &str,
) -> Result<ArrayRef> {
    conform_type(
        array,
        &field.data_type,
        target.data_type(),
        mode,
        file,
        &field.name,
    )
}

fn conform_type(
    array: &ArrayRef,
    delta: &DataType,
    target: &ArrowType,
    mode: ColumnMappingMode,
    file: &str,
    column: &str,
) -> Result<ArrayRef> {
    match (delta, target) {
        (DataType::Struct(st), ArrowType::Struct(fields)) => {
            conform_struct(array, st, fields, mode, file, column)
        }
        (DataType::Array(at), ArrowType::List(element)) => {
            let Some(list) = array.as_any().downcast_ref::<ListArray>() else {
                return Err(mismatch(file, column));
            };
            let values = conform_type(
                list.values(),
                &at.element_type,
                element.data_type(),
                mode,
                file,
                column,
            )?;
            Ok(Arc::new(ListArray::try_new(
                element.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        (DataType::Map(mt), ArrowType::Map(entries, ordered)) => {
            let Some(map) = array.as_any().downcast_ref::<MapArray>() else {
                return Err(mismatch(file, column));
            };
            let ArrowType::Struct(entry_fields) = entries.data_type() else {
                return Err(mismatch(file, column));
            };
            let (Some(key_field), Some(value_field)) = (entry_fields.first(), entry_fields.get(1))
            else {
                return Err(mismatch(file, column));
            };
            let keys = conform_type(
                map.keys(),
                &mt.key_type,
                key_field.data_type(),
                mode,
                file,
                column,
            )?;
            let values = conform_type(
                map.values(),
                &mt.value_type,
                value_field.data_type(),
                mode,
                file,
                column,
            )?;
            let entries_array =
                StructArray::try_new(entry_fields.clone(), vec![keys, values], None)?;
            Ok(Arc::new(MapArray::try_new(
                entries.clone(),
                map.offsets().clone(),
                entries_array,
                map.nulls().cloned(),
                *ordered,
            )?))
        }
        (_, ArrowType::Null) => Ok(new_null_array(&ArrowType::Null, array.len())),
        _ if array.data_type() == target => Ok(array.clone()),
        _ => {
            let options = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            cast_with_options(array, target, &options).map_err(|e| {
                Error::corrupt(
                    file,
                    format!(
                        "column `{column}` is stored as {} and cannot be read as {target}: {e}",
                        array.data_type()
                    ),
                )
            })
        }
    }
}

fn conform_struct(
    array: &ArrayRef,
    st: &StructType,
    fields: &Fields,
    mode: ColumnMappingMode,
    file: &str,
    column: &str,
) -> Result<ArrayRef> {
    let Some(source) = array.as_any().downcast_ref::<StructArray>() else {
        return Err(mismatch(file, column));
    };
    let mut children = Vec::with_capacity(fields.len());
    for (logical, target) in st.fields.iter().zip(fields.iter()) {
        let child = match find_physical(source.fields(), logical, mode) {
            Some(i) => conform_type(
                source.column(i),
                &logical.data_type,
                target.data_type(),
                mode,
                file,
                &logical.name,
            )?,
            None => new_null_array(target.data_type(), source.len()),
        };
        children.push(child);
    }
    let fields: Fields = relax_nullability(fields, &children);
    Ok(Arc::new(StructArray::try_new(
        fields,
        children,
        source.nulls().cloned(),
    )?))
}

/// Files may hold NULLs where the Delta schema says non-nullable (a missing child, or a
/// writer that disagreed); trust the data rather than fail, marking such fields nullable.
pub(crate) fn relax_nullability(fields: &Fields, children: &[ArrayRef]) -> Fields {
    fields
        .iter()
        .zip(children)
        .map(|(f, c)| -> FieldRef {
            if !f.is_nullable() && c.null_count() > 0 {
                Arc::new(f.as_ref().clone().with_nullable(true))
            } else {
                f.clone()
            }
        })
        .collect()
}

fn mismatch(file: &str, column: &str) -> Error {
    Error::corrupt(
        file,
        format!("column `{column}` has a nested type that does not match the table schema"),
    )
}
