//! Delta table schemas (the `schemaString` JSON) and their Arrow equivalents, including column mapping.
