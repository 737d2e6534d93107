//! Deletion vectors: descriptors, Z85, on-disk files and roaring bitmaps (Delta protocol "Deletion Vectors").
//!
//! A deletion vector (DV) marks rows of one data file as deleted by their 0-based physical row
//! index (PROTOCOL.md §10). The `add`/`remove` action carries a [`DeletionVectorDescriptor`]
//! telling where the bitmap lives:
//! * `u`: in a file next to the table, named from a Z85-encoded UUID (+ optional prefix dirs);
//! * `p`: in a file at an absolute URI;
//! * `i`: inline, the Z85-encoded bitmap itself.
//!
//! Everything here is I/O-free: the caller fetches [`DeletionVectorDescriptor::byte_range`] of
//! [`DeletionVectorDescriptor::absolute_path`] and hands the bytes to
//! [`DeletionVectorDescriptor::read_range`] (or the whole file to
//! [`DeletionVectorDescriptor::read_file`]). The result is a [`RoaringTreemap`] of deleted row
//! indexes, which [`selection_mask`] turns into a keep-mask for one batch.
//!
//! Errors name the DV (its storage type and path, never row values); any byte that violates the
//! format is [`Error::Corrupt`].

use std::ops::Range;

use arrow::array::{BooleanArray, BooleanBufferBuilder};
use arrow::buffer::BooleanBuffer;
use roaring::{RoaringBitmap, RoaringTreemap};
use url::Url;

use crate::{Error, Result};

/// Magic number (little-endian u32) of the "portable" 64-bit bitmap format Delta writes.
pub const PORTABLE_MAGIC: u32 = 1_681_511_377;
/// Magic number of Spark's "native" bitmap-array format (read only).
pub const NATIVE_MAGIC: u32 = 1_681_511_376;
/// The only DV file format version (byte 0 of every DV file).
pub const DV_FILE_FORMAT_VERSION: u8 = 1;

/// Storage type of a DV in a file at a path derived from a UUID, relative to the table root.
pub const STORAGE_TYPE_UUID: &str = "u";
/// Storage type of an inline DV.
pub const STORAGE_TYPE_INLINE: &str = "i";
/// Storage type of a DV in a file at an absolute path.
pub const STORAGE_TYPE_PATH: &str = "p";

/// Length of a Z85-encoded UUID (16 bytes).
const Z85_UUID_LEN: usize = 20;

/// The Z85 alphabet (digit value = index).
const Z85_ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// The `add.deletionVector` / `remove.deletionVector` descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionVectorDescriptor {
    /// `u` (UUID-relative path), `i` (inline) or `p` (absolute path).
    pub storage_type: String,
    /// `u`: `<prefix><20-char Z85 UUID>`; `i`: the Z85 bitmap; `p`: the absolute URI.
    pub path_or_inline_dv: String,
    /// Byte offset of the DV in its file (absent for inline DVs; absent means 0 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    /// Size in bytes of the serialised bitmap (before Z85 encoding for inline DVs).
    pub size_in_bytes: i32,
    /// Number of deleted rows.
    pub cardinality: i64,
}

impl DeletionVectorDescriptor {
    /// The DV's identity in the logical-file key `(path, dvId)`: storage type and
    /// `pathOrInlineDv`, plus `@offset` when an offset is present.
    pub fn unique_id(&self) -> String {
        match self.offset {
            Some(offset) => format!("{}{}@{offset}", self.storage_type, self.path_or_inline_dv),
            None => format!("{}{}", self.storage_type, self.path_or_inline_dv),
        }
    }

    /// Whether the bitmap is stored inline in the descriptor.
    pub fn is_inline(&self) -> bool {
        self.storage_type == STORAGE_TYPE_INLINE
    }

    /// A short name for this DV in errors (never the inline bitmap).
    fn error_path(&self) -> String {
        if self.is_inline() {
            "inline deletion vector".to_string()
        } else {
            format!("deletion vector {}", self.unique_id())
        }
    }

    /// Checks the descriptor's fields: known storage type, non-negative size, offset and
    /// cardinality. Unknown storage types are [`Error::Unsupported`], bad numbers
    /// [`Error::Corrupt`].
    pub fn validate(&self) -> Result<()> {
        match self.storage_type.as_str() {
            STORAGE_TYPE_UUID | STORAGE_TYPE_PATH | STORAGE_TYPE_INLINE => {}
            other => {
                return Err(Error::Unsupported {
                    kind: "deletion vector storage type",
                    feature: other.to_string(),
                });
            }
        }
        if self.size_in_bytes < 0 {
            return Err(Error::corrupt(self.error_path(), "negative sizeInBytes"));
        }
        if self.offset.is_some_and(|o| o < 0) {
            return Err(Error::corrupt(self.error_path(), "negative offset"));
        }
        if self.cardinality < 0 {
            return Err(Error::corrupt(self.error_path(), "negative cardinality"));
        }
        Ok(())
    }

    /// The location of the DV file: for `u`, `<table_root>/<prefix>/deletion_vector_<uuid>.bin`
    /// (no prefix directory when the prefix is empty); for `p`, the absolute URI (a bare absolute
    /// path is resolved against the table root's scheme and authority); for `i`, `None`.
    pub fn absolute_path(&self, table_root: &Url) -> Result<Option<Url>> {
        match self.storage_type.as_str() {
            STORAGE_TYPE_INLINE => Ok(None),
            STORAGE_TYPE_UUID => {
                let encoded = &self.path_or_inline_dv;
                let split = encoded.len().checked_sub(Z85_UUID_LEN).ok_or_else(|| {
                    Error::corrupt(
                        self.error_path(),
                        "pathOrInlineDv is shorter than a Z85 UUID",
                    )
                })?;
                let (prefix, uuid) = match (encoded.get(..split), encoded.get(split..)) {
                    (Some(p), Some(u)) => (p, u),
                    _ => {
                        return Err(Error::corrupt(
                            self.error_path(),
                            "pathOrInlineDv is not ASCII where the UUID should be",
                        ));
                    }
                };
                let bytes = z85_decode_impl(uuid)
                    .map_err(|reason| Error::corrupt(self.error_path(), reason))?;
                let uuid = uuid::Uuid::from_slice(&bytes)
                    .map_err(|_| Error::corrupt(self.error_path(), "the UUID is not 16 bytes"))?;
                let mut url = table_root.clone();
                {
                    let mut segments = url.path_segments_mut().map_err(|()| {
                        Error::invalid(format!("table root {table_root} cannot hold paths"))
                    })?;
                    segments.pop_if_empty();
                    for dir in prefix.split('/').filter(|s| !s.is_empty()) {
                        segments.push(dir);
                    }
                    segments.push(&format!("deletion_vector_{}.bin", uuid.hyphenated()));
                }
                Ok(Some(url))
            }
            STORAGE_TYPE_PATH => {
                let path = &self.path_or_inline_dv;
                match Url::parse(path) {
                    Ok(url) => Ok(Some(url)),
                    Err(url::ParseError::RelativeUrlWithoutBase) if path.starts_with('/') => {
                        table_root.join(path).map(Some).map_err(|e| {
                            Error::corrupt(self.error_path(), format!("invalid path: {e}"))
                        })
                    }
                    Err(e) => Err(Error::corrupt(
                        self.error_path(),
                        format!("invalid absolute path: {e}"),
                    )),
                }
            }
            other => Err(Error::Unsupported {
                kind: "deletion vector storage type",
                feature: other.to_string(),
            }),
        }
    }

    /// The bytes of the DV file to fetch, `offset .. offset + 4 + sizeInBytes + 4` (size field,
    /// bitmap, checksum), for on-disk (`u`/`p`) DVs. `None` for inline DVs and for descriptors
    /// whose offset or size is negative (see [`DeletionVectorDescriptor::validate`]).
    pub fn byte_range(&self) -> Option<Range<u64>> {
        if self.is_inline() {
            return None;
        }
        let offset = u64::try_from(self.offset.unwrap_or(0)).ok()?;
        let size = u64::try_from(self.size_in_bytes).ok()?;
        Some(offset..offset + 4 + size + 4)
    }

    /// Parses the bytes of [`DeletionVectorDescriptor::byte_range`] (fetched by the caller from
    /// the file at [`DeletionVectorDescriptor::absolute_path`]; `path` names it in errors) and
    /// checks the size, checksum and cardinality.
    pub fn read_range(&self, range_bytes: &[u8], path: &str) -> Result<RoaringTreemap> {
        let size = self.checked_size(path)?;
        let bitmap = parse_dv_file_slice(range_bytes, 0, size, path)?;
        self.check_cardinality(&bitmap, path)?;
        Ok(bitmap)
    }

    /// Parses the DV out of the whole DV file `file_bytes` (`path` names it in errors), checking
    /// the format version, size, checksum and cardinality.
    pub fn read_file(&self, file_bytes: &[u8], path: &str) -> Result<RoaringTreemap> {
        let size = self.checked_size(path)?;
        let offset = usize::try_from(self.offset.unwrap_or(0))
            .map_err(|_| Error::corrupt(path, "negative deletion vector offset"))?;
        match file_bytes.first() {
            Some(&DV_FILE_FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::corrupt(
                    path,
                    format!("unsupported deletion vector file format version {v}"),
                ));
            }
            None => return Err(Error::corrupt(path, "empty deletion vector file")),
        }
        let bitmap = parse_dv_file_slice(file_bytes, offset, size, path)?;
        self.check_cardinality(&bitmap, path)?;
        Ok(bitmap)
    }

    /// `sizeInBytes` as a `usize`.
    fn checked_size(&self, path: &str) -> Result<usize> {
        usize::try_from(self.size_in_bytes)
            .map_err(|_| Error::corrupt(path, "negative deletion vector sizeInBytes"))
    }

    /// Checks that `bitmap` holds `cardinality` rows.
    fn check_cardinality(&self, bitmap: &RoaringTreemap, path: &str) -> Result<()> {
        let len = bitmap.len();
        if u64::try_from(self.cardinality).ok() != Some(len) {
            return Err(Error::corrupt(
                path,
                format!(
                    "deletion vector holds {len} rows but its descriptor says cardinality {}",
                    self.cardinality
                ),
            ));
        }
        Ok(())
    }
}

/// Decodes an inline (`i`) DV: Z85-decodes `pathOrInlineDv`, keeps the first `sizeInBytes` bytes
/// and decodes the bitmap, checking the cardinality.
pub fn parse_inline(dv: &DeletionVectorDescriptor) -> Result<RoaringTreemap> {
    let path = dv.error_path();
    if !dv.is_inline() {
        return Err(Error::invalid(format!(
            "{} is not an inline deletion vector",
            dv.unique_id()
        )));
    }
    let size = dv.checked_size(&path)?;
    let bytes = z85_decode_impl(&dv.path_or_inline_dv).map_err(|r| Error::corrupt(&path, r))?;
    let bitmap_bytes = bytes.get(..size).ok_or_else(|| {
        Error::corrupt(
            &path,
            format!(
                "sizeInBytes {size} exceeds the {} decoded bytes",
                bytes.len()
            ),
        )
    })?;
    let bitmap = decode_bitmap(bitmap_bytes, &path)?;
    dv.check_cardinality(&bitmap, &path)?;
    Ok(bitmap)
}

/// Parses one DV stored in a DV file.
///
/// `file_bytes` holds the file (or a range of it) and `offset` is the position of the DV's
/// big-endian u32 size field in `file_bytes`: the descriptor's offset when `file_bytes` is the
/// whole file, 0 when it is exactly [`DeletionVectorDescriptor::byte_range`]. The size field must
/// equal `size_in_bytes`; it is followed by the bitmap and its big-endian CRC-32, which must
/// match. `path` names the file in errors. The file's version byte and the descriptor's
/// cardinality are not checked here; [`DeletionVectorDescriptor::read_file`] and
/// [`DeletionVectorDescriptor::read_range`] do that.
pub fn parse_dv_file_slice(
    file_bytes: &[u8],
    offset: usize,
    size_in_bytes: usize,
    path: &str,
) -> Result<RoaringTreemap> {
    let truncated = || Error::corrupt(path, "deletion vector file is truncated");
    let rest = file_bytes.get(offset..).ok_or_else(truncated)?;
    let (size_field, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    let stored_size = u32::from_be_bytes(*size_field);
    if usize::try_from(stored_size).ok() != Some(size_in_bytes) {
        return Err(Error::corrupt(
            path,
            format!(
                "deletion vector size field is {stored_size} but the descriptor says {size_in_bytes}"
            ),
        ));
    }
    let bitmap_bytes = rest.get(..size_in_bytes).ok_or_else(truncated)?;
    let checksum = rest
        .get(size_in_bytes..)
        .and_then(|r| r.first_chunk::<4>())
        .ok_or_else(truncated)?;
    if crc32fast::hash(bitmap_bytes) != u32::from_be_bytes(*checksum) {
        return Err(Error::corrupt(path, "deletion vector checksum mismatch"));
    }
    decode_bitmap(bitmap_bytes, path)
}

/// Serialises one DV for a DV file: big-endian size, bitmap, big-endian CRC-32 (the file
/// itself starts with the version byte [`DV_FILE_FORMAT_VERSION`]).
///
/// Fails ([`Error::InvalidArgument`]) when the bitmap is larger than 2 GiB.
pub fn encode_dv_file_entry(bitmap_bytes: &[u8]) -> Result<Vec<u8>> {
    let size = i32::try_from(bitmap_bytes.len())
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| Error::invalid("deletion vector bitmap larger than 2 GiB"))?;
    let mut out = Vec::with_capacity(bitmap_bytes.len() + 8);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(bitmap_bytes);
    out.extend_from_slice(&crc32fast::hash(bitmap_bytes).to_be_bytes());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Bitmaps
// ---------------------------------------------------------------------------------------------

/// A little-endian reader over a byte slice; every read checks bounds.
struct Reader<'a> {
    /// The unread bytes.
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.bytes.split_at_checked(n)?;
        self.bytes = tail;
        Some(head)
    }

    /// Reads 4 bytes.
    fn array4(&mut self) -> Option<[u8; 4]> {
        let (head, tail) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = tail;
        Some(*head)
    }

    /// Reads 8 bytes.
    fn array8(&mut self) -> Option<[u8; 8]> {
        let (head, tail) = self.bytes.split_first_chunk::<8>()?;
        self.bytes = tail;
        Some(*head)
    }
}

/// Decodes a serialised Delta bitmap of deleted row indexes. `what` names the DV in errors.
///
/// Accepts the "portable" format Delta writes (little-endian magic [`PORTABLE_MAGIC`], u64
/// bucket count, then per bucket in ascending order a u32 key — the high 32 bits of the row
/// index, MSB clear — and a standard 32-bit roaring bitmap) and Spark's "native" format (magic
/// [`NATIVE_MAGIC`], i32 bitmap count, then per bitmap an i32 size and a roaring bitmap whose
/// high 32 bits are its position), whose header may be little- or big-endian. Bytes after the
/// bitmap are ignored, like Spark does.
pub fn decode_bitmap(bytes: &[u8], what: &str) -> Result<RoaringTreemap> {
    let corrupt = |reason: &str| Error::corrupt(what, format!("deletion vector bitmap: {reason}"));
    let mut reader = Reader { bytes };
    let magic = reader
        .array4()
        .ok_or_else(|| corrupt("shorter than its magic number"))?;
    if u32::from_le_bytes(magic) == PORTABLE_MAGIC {
        decode_portable(&mut reader, what)
    } else if u32::from_le_bytes(magic) == NATIVE_MAGIC {
        decode_native(&mut reader, false, what)
    } else if u32::from_be_bytes(magic) == NATIVE_MAGIC {
        decode_native(&mut reader, true, what)
    } else {
        Err(corrupt("unknown magic number"))
    }
}

/// Deserialises one 32-bit roaring bitmap from the front of `reader`.
fn read_roaring(reader: &mut Reader<'_>, what: &str) -> Result<RoaringBitmap> {
    let mut cursor = reader.bytes;
    let bitmap = RoaringBitmap::deserialize_from(&mut cursor).map_err(|e| {
        Error::corrupt(
            what,
            format!("deletion vector bitmap: invalid roaring bitmap: {e}"),
        )
    })?;
    reader.bytes = cursor;
    Ok(bitmap)
}

/// The portable format after its magic.
fn decode_portable(reader: &mut Reader<'_>, what: &str) -> Result<RoaringTreemap> {
    let corrupt = |reason: &str| Error::corrupt(what, format!("deletion vector bitmap: {reason}"));
    let buckets = reader
        .array8()
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt("truncated bucket count"))?;
    let mut parts: Vec<(u32, RoaringBitmap)> = Vec::new();
    for _ in 0..buckets {
        let key = reader
            .array4()
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("truncated bucket key"))?;
        if key & 0x8000_0000 != 0 {
            return Err(corrupt("bucket key has its most significant bit set"));
        }
        if parts.last().is_some_and(|(last, _)| *last >= key) {
            return Err(corrupt("bucket keys are not strictly ascending"));
        }
        let bitmap = read_roaring(reader, what)?;
        parts.push((key, bitmap));
    }
    Ok(RoaringTreemap::from_bitmaps(parts))
}

/// Spark's native format after its magic; `big_endian` is the byte order of the header fields.
fn decode_native(reader: &mut Reader<'_>, big_endian: bool, what: &str) -> Result<RoaringTreemap> {
    let corrupt = |reason: &str| Error::corrupt(what, format!("deletion vector bitmap: {reason}"));
    let read_i32 = |reader: &mut Reader<'_>| {
        reader.array4().map(|b| {
            if big_endian {
                i32::from_be_bytes(b)
            } else {
                i32::from_le_bytes(b)
            }
        })
    };
    let count = read_i32(reader).ok_or_else(|| corrupt("truncated bitmap count"))?;
    let count = u32::try_from(count).map_err(|_| corrupt("negative bitmap count"))?;
    let mut parts: Vec<(u32, RoaringBitmap)> = Vec::new();
    for key in 0..count {
        let size = read_i32(reader).ok_or_else(|| corrupt("truncated bitmap size"))?;
        let size = usize::try_from(size).map_err(|_| corrupt("negative bitmap size"))?;
        let bytes = reader
            .take(size)
            .ok_or_else(|| corrupt("truncated bitmap"))?;
        let mut sub = Reader { bytes };
        let bitmap = read_roaring(&mut sub, what)?;
        if !sub.bytes.is_empty() {
            return Err(corrupt("bitmap size does not match its content"));
        }
        if !bitmap.is_empty() {
            parts.push((key, bitmap));
        }
    }
    Ok(RoaringTreemap::from_bitmaps(parts))
}

/// Serialises deleted row indexes in the portable format (see [`decode_bitmap`]).
///
/// Row indexes must be below 2^63 (Delta readers reject bucket keys with the most significant
/// bit set); parquet files never come close.
pub fn encode_bitmap(bitmap: &RoaringTreemap) -> Vec<u8> {
    let mut out = Vec::with_capacity(bitmap.serialized_size() + 4);
    out.extend_from_slice(&PORTABLE_MAGIC.to_le_bytes());
    bitmap
        .serialize_into(&mut out)
        .expect("writing to a Vec<u8> cannot fail");
    out
}

/// A keep-mask for the `num_rows` rows starting at physical row `first_row`: `false` where the
/// row index is in `deleted`. Walks only the deleted rows inside the batch, not every row.
pub fn selection_mask(deleted: &RoaringTreemap, first_row: u64, num_rows: usize) -> BooleanArray {
    let mut builder = BooleanBufferBuilder::new(num_rows);
    builder.append_n(num_rows, true);
    let end = first_row.saturating_add(u64::try_from(num_rows).unwrap_or(u64::MAX));
    let mut iter = deleted.iter();
    iter.advance_to(first_row);
    for row in iter.take_while(|&r| r < end) {
        // `row - first_row < num_rows`, so it fits a usize.
        if let Ok(i) = usize::try_from(row - first_row) {
            builder.set_bit(i, false);
        }
    }
    let buffer: BooleanBuffer = builder.finish();
    BooleanArray::new(buffer, None)
}

// ---------------------------------------------------------------------------------------------
// Z85
// ---------------------------------------------------------------------------------------------

/// Encodes bytes in Delta's Z85 variant: the input is padded with zero bytes to a multiple of 4,
/// each big-endian 4-byte block becomes 5 characters.
pub fn z85_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(4) * 5);
    for chunk in bytes.chunks(4) {
        let mut block = [0u8; 4];
        block[..chunk.len()].copy_from_slice(chunk);
        let mut value = u32::from_be_bytes(block);
        let mut chars = [0u8; 5];
        for c in chars.iter_mut().rev() {
            // `value % 85 < 85` always converts and is a valid alphabet index.
            *c = u8::try_from(value % 85).map_or(b'0', |d| Z85_ALPHABET[usize::from(d)]);
            value /= 85;
        }
        out.extend(chars.iter().map(|&c| char::from(c)));
    }
    out
}

/// Decodes Delta's Z85 variant (length a multiple of 5; 4 bytes per 5 characters, big-endian).
/// Like Delta, each block's value is computed modulo 2^32. Bad input is
/// [`Error::InvalidArgument`].
pub fn z85_decode(s: &str) -> Result<Vec<u8>> {
    z85_decode_impl(s).map_err(Error::invalid)
}

/// Z85 decoding with a plain-text reason on failure.
fn z85_decode_impl(s: &str) -> std::result::Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(5) {
        return Err(format!(
            "z85 text length {} is not a multiple of 5",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for block in bytes.chunks_exact(5) {
        let mut value: u32 = 0;
        for &c in block {
            let digit = z85_digit(c).ok_or_else(|| "invalid z85 character".to_string())?;
            value = value.wrapping_mul(85).wrapping_add(u32::from(digit));
        }
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(out)
}

/// The value of one Z85 character.
fn z85_digit(c: u8) -> Option<u8> {
    Z85_ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u8::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use proptest::prelude::*;

    fn descriptor(
        storage_type: &str,
        path: &str,
        offset: Option<i32>,
        size: i32,
        card: i64,
    ) -> DeletionVectorDescriptor {
        DeletionVectorDescriptor {
            storage_type: storage_type.into(),
            path_or_inline_dv: path.into(),
            offset,
            size_in_bytes: size,
            cardinality: card,
        }
    }

    #[test]
    fn z85_spec_vector() {
        // The ZeroMQ Z85 test vector (same alphabet and block order).
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(z85_encode(&bytes), "HelloWorld");
        assert_eq!(z85_decode("HelloWorld").expect("decode"), bytes);
        // Padding to a multiple of 4.
        assert_eq!(z85_encode(&[0x86]).len(), 5);
        assert_eq!(
            z85_decode(&z85_encode(&[1, 2, 3])).expect("decode"),
            [1, 2, 3, 0]
        );
        assert!(z85_decode("abcd").is_err());
        assert!(z85_decode("abc d").is_err());
        assert!(z85_decode("abcdé").is_err());
    }

    #[test]
    fn z85_wraps_like_delta() {
        // "#####" is 85^5 - 1 > u32::MAX; Delta keeps the low 32 bits.
        let expected = (85u64.pow(5) - 1) & 0xFFFF_FFFF;
        assert_eq!(
            z85_decode("#####").expect("decode"),
            u32::try_from(expected).expect("fits").to_be_bytes()
        );
    }

    #[test]
    fn uuid_descriptor_path() {
        let dv = descriptor("u", "ab^-aqEH.-t@S}K{vb[*k^", Some(1), 36, 2);
        let root = Url::parse("s3://bucket/tables/t1/").expect("url");
        let path = dv.absolute_path(&root).expect("path").expect("on disk");
        assert_eq!(
            path.as_str(),
            "s3://bucket/tables/t1/ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
        );
        // Root without a trailing slash, no prefix.
        let dv = descriptor("u", "^-aqEH.-t@S}K{vb[*k^", Some(1), 36, 2);
        let root = Url::parse("file:///data/t1").expect("url");
        assert_eq!(
            dv.absolute_path(&root)
                .expect("path")
                .expect("on disk")
                .as_str(),
            "file:///data/t1/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
        );
        assert_eq!(dv.unique_id(), "u^-aqEH.-t@S}K{vb[*k^@1");
        assert_eq!(dv.byte_range(), Some(1..45));
        // Too short / bad characters.
        assert!(matches!(
            descriptor("u", "abc", Some(1), 1, 1).absolute_path(&root),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            descriptor("u", "^-aqEH.-t@S}K{vb[*k ", Some(1), 1, 1).absolute_path(&root),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn absolute_and_inline_paths() {
        let root = Url::parse("file:///data/t1/").expect("url");
        let dv = descriptor("p", "s3://other/dv/file.bin", Some(5), 10, 1);
        assert_eq!(
            dv.absolute_path(&root)
                .expect("path")
                .expect("on disk")
                .as_str(),
            "s3://other/dv/file.bin"
        );
        assert_eq!(dv.byte_range(), Some(5..23));
        let dv = descriptor("p", "/abs/dv.bin", None, 10, 1);
        assert_eq!(
            dv.absolute_path(&root)
                .expect("path")
                .expect("on disk")
                .as_str(),
            "file:///abs/dv.bin"
        );
        assert_eq!(dv.byte_range(), Some(0..18));
        assert_eq!(dv.unique_id(), "p/abs/dv.bin");
        let inline = descriptor(
            "i",
            "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
            None,
            40,
            6,
        );
        assert_eq!(inline.absolute_path(&root).expect("path"), None);
        assert_eq!(inline.byte_range(), None);
        assert!(matches!(
            descriptor("x", "", None, 0, 0).absolute_path(&root),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            descriptor("x", "", None, 0, 0).validate(),
            Err(Error::Unsupported { .. })
        ));
        assert!(descriptor("u", "", Some(-1), 0, 0).validate().is_err());
        assert!(descriptor("u", "", Some(1), -1, 0).validate().is_err());
        assert_eq!(descriptor("u", "", Some(-1), 0, 0).byte_range(), None);
        assert!(descriptor("u", "", Some(1), 1, 0).validate().is_ok());
    }

    #[test]
    fn serde_matches_the_log() {
        let json = r#"{"storageType":"u","pathOrInlineDv":"vBn[lx{q8@P<9BNH/isA","offset":1,"sizeInBytes":36,"cardinality":2}"#;
        let dv: DeletionVectorDescriptor = serde_json::from_str(json).expect("parse");
        assert_eq!(dv, descriptor("u", "vBn[lx{q8@P<9BNH/isA", Some(1), 36, 2));
        assert_eq!(serde_json::to_string(&dv).expect("json"), json);
        let inline = descriptor("i", "abcde", None, 4, 0);
        let json = serde_json::to_string(&inline).expect("json");
        assert!(!json.contains("offset"));
        assert_eq!(
            serde_json::from_str::<DeletionVectorDescriptor>(&json).expect("parse"),
            inline
        );
    }

    #[test]
    fn spec_inline_example_uses_native_layout() {
        let dv = descriptor(
            "i",
            "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
            None,
            40,
            6,
        );
        let bitmap = parse_inline(&dv).expect("decode");
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), [3, 4, 7, 11, 18, 29]);
        let mut wrong = dv.clone();
        wrong.cardinality = 5;
        assert!(matches!(parse_inline(&wrong), Err(Error::Corrupt { .. })));
        let mut too_big = dv;
        too_big.size_in_bytes = 41;
        assert!(matches!(parse_inline(&too_big), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn inline_round_trip() {
        let rows: RoaringTreemap = [0u64, 5, 1 << 33, (1 << 33) + 7].into_iter().collect();
        let bytes = encode_bitmap(&rows);
        let dv = descriptor(
            "i",
            &z85_encode(&bytes),
            None,
            i32::try_from(bytes.len()).expect("small"),
            4,
        );
        assert_eq!(parse_inline(&dv).expect("decode"), rows);
        assert!(matches!(
            parse_inline(&descriptor("u", "x", Some(1), 1, 1)),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn native_little_endian_layout() {
        let low: RoaringBitmap = [1u32, 2].into_iter().collect();
        let high: RoaringBitmap = [9u32].into_iter().collect();
        let mut bytes = NATIVE_MAGIC.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2i32.to_le_bytes());
        for b in [&low, &high] {
            let mut ser = Vec::new();
            b.serialize_into(&mut ser).expect("vec");
            bytes.extend_from_slice(&i32::try_from(ser.len()).expect("small").to_le_bytes());
            bytes.extend_from_slice(&ser);
        }
        let decoded = decode_bitmap(&bytes, "test").expect("decode");
        assert_eq!(decoded.iter().collect::<Vec<_>>(), [1, 2, (1 << 32) + 9]);
    }

    #[test]
    fn bad_bitmaps_are_corrupt() {
        let good = encode_bitmap(&[1u64, 2, 3].into_iter().collect());
        for bad in [
            &good[..2],
            &good[..10],
            &good[..good.len() - 1],
            &[0u8, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            assert!(
                matches!(decode_bitmap(bad, "x"), Err(Error::Corrupt { .. })),
                "{bad:?}"
            );
        }
        // Bucket key with the MSB set.
        let mut msb = PORTABLE_MAGIC.to_le_bytes().to_vec();
        msb.extend_from_slice(&1u64.to_le_bytes());
        msb.extend_from_slice(&0x8000_0000u32.to_le_bytes());
        RoaringBitmap::new().serialize_into(&mut msb).expect("vec");
        assert!(decode_bitmap(&msb, "x").is_err());
        // Keys out of order.
        let mut unordered = PORTABLE_MAGIC.to_le_bytes().to_vec();
        unordered.extend_from_slice(&2u64.to_le_bytes());
        for key in [3u32, 1] {
            unordered.extend_from_slice(&key.to_le_bytes());
            [1u32]
                .into_iter()
                .collect::<RoaringBitmap>()
                .serialize_into(&mut unordered)
                .expect("vec");
        }
        assert!(decode_bitmap(&unordered, "x").is_err());
        // A huge bucket count with no data fails cleanly.
        let mut huge = PORTABLE_MAGIC.to_le_bytes().to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_bitmap(&huge, "x").is_err());
    }

    /// A DV file holding `bitmaps` one after the other; returns the bytes and each offset.
    fn dv_file(bitmaps: &[RoaringTreemap]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut file = vec![DV_FILE_FORMAT_VERSION];
        let mut entries = Vec::new();
        for b in bitmaps {
            let bytes = encode_bitmap(b);
            entries.push((file.len(), bytes.len()));
            file.extend(encode_dv_file_entry(&bytes).expect("entry"));
        }
        (file, entries)
    }

    #[test]
    fn dv_file_slices_and_crc() {
        let a: RoaringTreemap = (0..100u64).collect();
        let b: RoaringTreemap = [7u64, 1_000_000].into_iter().collect();
        let (file, entries) = dv_file(&[a.clone(), b.clone()]);
        let (off_b, size_b) = entries[1];
        assert_eq!(
            parse_dv_file_slice(&file, entries[0].0, entries[0].1, "f").expect("a"),
            a
        );
        assert_eq!(
            parse_dv_file_slice(&file, off_b, size_b, "f").expect("b"),
            b
        );

        let dv = descriptor(
            "u",
            "^-aqEH.-t@S}K{vb[*k^",
            Some(i32::try_from(off_b).expect("small")),
            i32::try_from(size_b).expect("small"),
            2,
        );
        assert_eq!(dv.read_file(&file, "f").expect("file"), b);
        let range = dv.byte_range().expect("range");
        let start = usize::try_from(range.start).expect("small");
        let end = usize::try_from(range.end).expect("small");
        assert_eq!(end, file.len());
        assert_eq!(dv.read_range(&file[start..end], "f").expect("range"), b);

        // Wrong cardinality.
        let mut wrong = dv.clone();
        wrong.cardinality = 3;
        assert!(matches!(
            wrong.read_file(&file, "f"),
            Err(Error::Corrupt { .. })
        ));
        // Wrong size.
        assert!(matches!(
            parse_dv_file_slice(&file, off_b, size_b + 1, "f"),
            Err(Error::Corrupt { .. })
        ));
        // Truncated.
        assert!(matches!(
            parse_dv_file_slice(&file[..file.len() - 2], off_b, size_b, "f"),
            Err(Error::Corrupt { .. })
        ));
        assert!(parse_dv_file_slice(&file, file.len() + 3, 0, "f").is_err());
        // Flipped bitmap byte: checksum mismatch.
        let mut flipped = file.clone();
        flipped[off_b + 4 + 5] ^= 0x01;
        match parse_dv_file_slice(&flipped, off_b, size_b, "f.bin") {
            Err(Error::Corrupt { path, reason }) => {
                assert_eq!(path, "f.bin");
                assert_eq!(reason, "deletion vector checksum mismatch");
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        // Bad version byte.
        let mut v2 = file;
        v2[0] = 2;
        assert!(matches!(dv.read_file(&v2, "f"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn selection_mask_marks_deleted_rows() {
        let deleted: RoaringTreemap = [0u64, 3, 9, 10, 15, 1 << 40].into_iter().collect();
        let mask = selection_mask(&deleted, 3, 10);
        let keep: Vec<bool> = mask.iter().map(|v| v.unwrap_or(false)).collect();
        assert_eq!(
            keep,
            [
                false, true, true, true, true, true, false, false, true, true
            ]
        );
        assert_eq!(mask.null_count(), 0);
        let mask = selection_mask(&deleted, 1 << 40, 2);
        assert_eq!(mask.true_count(), 1);
        assert_eq!(selection_mask(&deleted, u64::MAX - 1, 5).len(), 5);
        assert_eq!(selection_mask(&RoaringTreemap::new(), 0, 0).len(), 0);
        // Large batch: only the deleted rows are false.
        let many: RoaringTreemap = (0..1_000_000u64).step_by(3).collect();
        let mask = selection_mask(&many, 500_000, 100_000);
        let expected_deleted = (500_000..600_000u64).filter(|r| r % 3 == 0).count();
        assert_eq!(mask.len() - mask.true_count(), expected_deleted);
    }

    /// The conformance fixtures folder, or `None` (after printing why) when it is absent outside CI.
    fn conformance_table(name: &str) -> Option<std::path::PathBuf> {
        let dir = crate::fixtures::conformance_root()
            .join("delta-kernel-rs-data")
            .join(name);
        if dir.is_dir() {
            return Some(dir);
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance fixture missing at {} (required when CI=true)",
            dir.display()
        );
        println!(
            "skipping: conformance fixture not found at {}",
            dir.display()
        );
        None
    }

    /// Reads the DV of the first `add` with one in the table's commits and checks the rows.
    fn check_fixture(table: &str, expected: &[u64]) {
        let Some(dir) = conformance_table(table) else {
            return;
        };
        let mut dv = None;
        let mut logs: Vec<_> = std::fs::read_dir(dir.join("_delta_log"))
            .expect("log dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        logs.sort();
        'outer: for log in logs {
            let text = std::fs::read_to_string(&log).expect("read log");
            for line in text.lines() {
                let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if let Some(d) = action.get("add").and_then(|a| a.get("deletionVector")) {
                    dv = Some(
                        serde_json::from_value::<DeletionVectorDescriptor>(d.clone())
                            .expect("descriptor"),
                    );
                    break 'outer;
                }
            }
        }
        let dv = dv.expect("the fixture has a deletion vector");
        dv.validate().expect("valid");
        let root = Url::from_directory_path(&dir).expect("dir url");
        let url = dv.absolute_path(&root).expect("path").expect("on disk");
        let file_path = url.to_file_path().expect("file path");
        assert!(file_path.is_file(), "{} missing", file_path.display());
        let bytes = std::fs::read(&file_path).expect("read dv");
        let name = file_path.display().to_string();

        let from_file = dv.read_file(&bytes, &name).expect("whole file");
        assert_eq!(from_file.iter().collect::<Vec<_>>(), expected);

        let range = dv.byte_range().expect("range");
        let start = usize::try_from(range.start).expect("small");
        let end = usize::try_from(range.end).expect("small");
        let from_range = dv.read_range(&bytes[start..end], &name).expect("range");
        assert_eq!(from_range, from_file);

        // Our encoder reproduces the bytes Spark wrote.
        let size = usize::try_from(dv.size_in_bytes).expect("size");
        assert_eq!(
            encode_bitmap(&from_file),
            bytes[start + 4..start + 4 + size]
        );

        // Flip one bitmap byte in the fetched range: the checksum must catch it.
        let mut flipped = bytes[start..end].to_vec();
        flipped[4 + size - 1] ^= 0x80;
        match dv.read_range(&flipped, &name) {
            Err(Error::Corrupt { reason, .. }) => {
                assert_eq!(reason, "deletion vector checksum mismatch");
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
    }

    #[test]
    fn fixture_table_with_dv_small() {
        check_fixture("table-with-dv-small", &[0, 9]);
    }

    #[test]
    fn fixture_with_short_dv() {
        check_fixture("with-short-dv", &[0, 1, 2]);
    }

    fn treemap_strategy() -> impl Strategy<Value = RoaringTreemap> {
        let row = prop_oneof![
            0u64..10_000,
            0u64..(1 << 40),
            Just((1u64 << 63) - 1),
            (0u64..4).prop_map(|k| (k << 32) | 0xFFFF),
        ];
        prop::collection::vec(
            prop_oneof![
                row.clone().prop_map(|r| (r, 1u64)),
                (row, 1u64..20_000).prop_map(|(r, n)| (r.min((1 << 63) - 20_000), n)),
            ],
            0..40,
        )
        .prop_map(|ranges| {
            let mut t = RoaringTreemap::new();
            for (start, len) in ranges {
                t.insert_range(start..start + len);
            }
            t
        })
    }

    proptest! {
        #[test]
        fn z85_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let encoded = z85_encode(&bytes);
            prop_assert_eq!(encoded.len(), bytes.len().div_ceil(4) * 5);
            let decoded = z85_decode(&encoded).expect("decode");
            prop_assert_eq!(&decoded[..bytes.len()], &bytes[..]);
            prop_assert!(decoded[bytes.len()..].iter().all(|&b| b == 0));
        }

        #[test]
        fn bitmap_round_trip(mut rows in treemap_strategy()) {
            let bytes = encode_bitmap(&rows);
            prop_assert_eq!(&decode_bitmap(&bytes, "p").expect("decode"), &rows);
            rows.optimize();
            let bytes = encode_bitmap(&rows);
            prop_assert_eq!(&decode_bitmap(&bytes, "p").expect("decode"), &rows);
            let (file, entries) = dv_file(std::slice::from_ref(&rows));
            let (offset, size) = entries[0];
            prop_assert_eq!(&parse_dv_file_slice(&file, offset, size, "p").expect("file"), &rows);
        }

        #[test]
        fn selection_mask_matches_contains(
            rows in prop::collection::btree_set(0u64..5_000, 0..300),
            first in 0u64..5_000,
            n in 0usize..2_000,
        ) {
            let t: RoaringTreemap = rows.iter().copied().collect();
            let mask = selection_mask(&t, first, n);
            prop_assert_eq!(mask.len(), n);
            for (i, keep) in mask.iter().enumerate() {
                let row = first + u64::try_from(i).expect("small");
                prop_assert_eq!(keep, Some(!t.contains(row)));
            }
        }
    }
}
