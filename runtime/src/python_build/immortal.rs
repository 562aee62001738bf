//! The pre-initialized heap made immortal: after componentize-py wrote the component, the
//! objects its CPython holds get the immortal reference count in the memory image, so that calls
//! read them without writing to their pages (PEP 683: `Py_INCREF` / `Py_DECREF` leave immortal
//! objects alone).
//!
//! Which objects: the guest lists them at the end of its build-time run (`wasmfn/_heap.py`): a
//! table in one bytes object behind a 16-byte marker, with the count to write and a checksum.
//! This module finds the table in the active data segments (the memory image), checks it, and
//! writes the count into each listed object whose header still looks like a live object's (a
//! count below the immortal range, a type pointer), in place: the bundle keeps its size and
//! layout. A component without a table (another guest, a Python without immortal objects) is
//! left as it is.

use sha2::{Digest, Sha256};
use wasmparser::{DataKind, Encoding, Operator, Parser, Payload};

/// The table's marker: the first 16 bytes of this text's SHA-256 (wasmfn/_heap.py's `_MARKER`).
const MARKER_SOURCE: &[u8] = b"wasmfn immortal heap table, v1";
const MARKER_LEN: usize = 16;
/// Marker, count to write, number of addresses.
const HEAD_LEN: usize = MARKER_LEN + 8;
const CHECKSUM_LEN: usize = 8;
/// CPython's 32-bit immortality threshold (`_Py_IMMORTAL_MINIMUM_REFCNT`, 1 << 30): a count
/// the table asks for must be at least this, and an object's count below it to be rewritten.
const IMMORTAL_MINIMUM: u32 = 1 << 30;

/// What [`immortalize`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Immortalized {
    /// Objects the guest listed.
    pub listed: usize,
    /// Objects whose count was rewritten.
    pub written: usize,
}

/// One active data segment of a core module's memory 0: where it starts in memory and where
/// its bytes are in the component.
#[derive(Debug, Clone, Copy)]
struct Segment {
    address: u64,
    file_offset: usize,
    len: usize,
}

/// The memory image of one core module, as the component holds it.
struct Image<'a> {
    bytes: &'a [u8],
    /// Sorted by address.
    segments: Vec<Segment>,
}

impl Image<'_> {
    /// The component's offsets of the byte at memory `address` and of the end of its segment,
    /// if the image has it.
    fn locate(&self, address: u64) -> Option<(usize, usize)> {
        let at = self.segments.partition_point(|s| s.address <= address).checked_sub(1)?;
        let segment = self.segments[at];
        let within = usize::try_from(address - segment.address).ok()?;
        let end = segment.file_offset + segment.len;
        (within < segment.len).then(|| (segment.file_offset + within, end))
    }

    /// The component's offset of the byte at memory `address`, if the image has it.
    fn offset(&self, address: u64) -> Option<usize> {
        Some(self.locate(address)?.0)
    }

    /// The offsets of `len` bytes from `address` (they may cross segments), if all are there.
    fn offsets(&self, address: u64, len: usize) -> Option<Vec<usize>> {
        (0..len as u64).map(|i| self.offset(address + i)).collect()
    }

    /// `len` bytes from `address`, copied a segment's run at a time (they may cross segments
    /// that follow each other), if all are there.
    fn read(&self, mut address: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < len {
            let (start, segment_end) = self.locate(address)?;
            let run = (segment_end - start).min(len - out.len());
            out.extend_from_slice(&self.bytes[start..start + run]);
            address += run as u64;
        }
        Some(out)
    }

    fn read_u32(&self, address: u64) -> Option<u32> {
        Some(u32::from_le_bytes(self.read(address, 4)?.try_into().ok()?))
    }
}

/// Writes the immortal reference count into the objects the guest listed; `Ok(None)` when the
/// component has no (valid) table. Errors are a component wasmparser cannot read.
pub fn immortalize(
    component: &mut [u8],
) -> Result<Option<Immortalized>, wasmparser::BinaryReaderError> {
    let marker = &Sha256::digest(MARKER_SOURCE)[..MARKER_LEN];
    let found = memory_images(component)?.into_iter().find_map(|segments| {
        let image = Image { bytes: &*component, segments };
        let table = find_table(&image, marker)?;
        Some((image.segments, table))
    });
    let Some((segments, (value, addresses))) = found else { return Ok(None) };
    let image = Image { bytes: &*component, segments };
    let mut writes: Vec<usize> = Vec::new();
    for &address in &addresses {
        let (Some(count), Some(kind)) = (image.read_u32(address), image.read_u32(address + 4))
        else {
            continue;
        };
        if count == 0 || count >= IMMORTAL_MINIMUM || kind == 0 {
            continue;
        }
        if let Some(offsets) = image.offsets(address, 4) {
            writes.extend(offsets);
        }
    }
    let done = Immortalized { listed: addresses.len(), written: writes.len() / 4 };
    for (offset, byte) in writes.into_iter().zip(value.to_le_bytes().into_iter().cycle()) {
        component[offset] = byte;
    }
    Ok(Some(done))
}

/// The active data segments of memory 0 of each core module in `component`.
fn memory_images(component: &[u8]) -> Result<Vec<Vec<Segment>>, wasmparser::BinaryReaderError> {
    let base = component.as_ptr() as usize;
    let mut images: Vec<Vec<Segment>> = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        match payload? {
            Payload::Version { encoding: Encoding::Module, .. } => images.push(Vec::new()),
            Payload::DataSection(reader) => {
                let Some(segments) = images.last_mut() else { continue };
                for data in reader {
                    let data = data?;
                    let DataKind::Active { memory_index: 0, offset_expr } = data.kind else {
                        continue;
                    };
                    let mut ops = offset_expr.get_operators_reader();
                    let address = match ops.read()? {
                        Operator::I32Const { value } => u64::from(value as u32),
                        Operator::I64Const { value } => value as u64,
                        // An offset from a global: not a place known before instantiation.
                        _ => continue,
                    };
                    let file_offset = data.data.as_ptr() as usize - base;
                    segments.push(Segment { address, file_offset, len: data.data.len() });
                }
            }
            _ => {}
        }
    }
    for segments in &mut images {
        segments.sort_by_key(|s| s.address);
    }
    Ok(images)
}

/// The count to write and the addresses, from the first table in `image` whose checksum holds.
fn find_table(image: &Image<'_>, marker: &[u8]) -> Option<(u32, Vec<u64>)> {
    for segment in &image.segments {
        let data = &image.bytes[segment.file_offset..segment.file_offset + segment.len];
        let mut from = 0;
        while let Some(at) = find(&data[from..], marker) {
            let address = segment.address + (from + at) as u64;
            if let Some(table) = read_table(image, address) {
                return Some(table);
            }
            from += at + 1;
        }
    }
    None
}

fn read_table(image: &Image<'_>, address: u64) -> Option<(u32, Vec<u64>)> {
    let head = image.read(address, HEAD_LEN)?;
    let value = u32::from_le_bytes(head[MARKER_LEN..MARKER_LEN + 4].try_into().ok()?);
    let count = u32::from_le_bytes(head[MARKER_LEN + 4..HEAD_LEN].try_into().ok()?) as usize;
    if value < IMMORTAL_MINIMUM || count > (u32::MAX as usize) / 4 {
        return None;
    }
    let body = image.read(address, HEAD_LEN + count * 4 + CHECKSUM_LEN)?;
    let (listed, checksum) = body.split_at(HEAD_LEN + count * 4);
    if Sha256::digest(listed)[..CHECKSUM_LEN] != *checksum {
        return None;
    }
    let addresses = listed[HEAD_LEN..]
        .chunks_exact(4)
        .map(|a| u64::from(u32::from_le_bytes(a.try_into().expect("4 bytes"))))
        .collect();
    Some((value, addresses))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module whose memory image holds `objects` (address, count, type) and a table
    /// listing `listed`, at the addresses given; `tamper` changes the table after its checksum.
    fn module(objects: &[(u32, u32, u32)], listed: &[u32], tamper: bool) -> Vec<u8> {
        use wasm_encoder::{ConstExpr, DataSection, MemorySection, MemoryType, Module};
        let marker = &Sha256::digest(MARKER_SOURCE)[..MARKER_LEN];
        let mut table = marker.to_vec();
        table.extend((5u32 << 28).to_le_bytes());
        table.extend((listed.len() as u32).to_le_bytes());
        for address in listed {
            table.extend(address.to_le_bytes());
        }
        let checksum = Sha256::digest(&table)[..CHECKSUM_LEN].to_vec();
        table.extend(checksum);
        if tamper {
            let last = table.len() - CHECKSUM_LEN - 1;
            table[last] ^= 1;
        }
        let mut memory = MemorySection::new();
        memory.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut data = DataSection::new();
        // The table splits across two segments, as an image cut in pieces could hold it.
        let (first, second) = table.split_at(table.len() / 2);
        data.active(0, &ConstExpr::i32_const(0x8000), first.iter().copied());
        data.active(0, &ConstExpr::i32_const(0x8000 + first.len() as i32), second.iter().copied());
        for &(address, count, kind) in objects {
            let mut header = count.to_le_bytes().to_vec();
            header.extend(kind.to_le_bytes());
            data.active(0, &ConstExpr::i32_const(address as i32), header);
        }
        let mut module = Module::new();
        module.section(&memory).section(&data);
        module.finish()
    }

    fn counts(module: &[u8], addresses: &[u32]) -> Vec<u32> {
        let images = memory_images(module).unwrap();
        let image = Image { bytes: module, segments: images[0].clone() };
        addresses.iter().map(|&a| image.read_u32(u64::from(a)).unwrap()).collect()
    }

    #[test]
    fn listed_live_objects_get_the_immortal_count_and_nothing_else_changes() {
        let objects = [(0x100, 3, 0x40), (0x200, 1, 0x44), (0x300, 0, 0x48), (0x400, 7, 0)];
        let mut bytes = module(&objects, &[0x100, 0x200, 0x300, 0x400, 0x9000_0000], false);
        let before = bytes.clone();
        let done = immortalize(&mut bytes).unwrap().expect("a table");
        assert_eq!(done, Immortalized { listed: 5, written: 2 });
        // Listed and live: immortal. A zero count (freed) and a null type are not objects to
        // touch; an address outside the image is skipped.
        assert_eq!(counts(&bytes, &[0x100, 0x200, 0x300, 0x400]), vec![5 << 28, 5 << 28, 0, 7]);
        let changed = before.iter().zip(&bytes).filter(|(a, b)| a != b).count();
        assert!(changed <= 8, "only two counts' bytes change, {changed} did");
        assert_eq!(before.len(), bytes.len());
        // A second pass finds them immortal already.
        assert_eq!(immortalize(&mut bytes).unwrap().unwrap().written, 0);
    }

    #[test]
    fn a_table_whose_checksum_fails_or_no_table_changes_nothing() {
        let objects = [(0x100, 3, 0x40)];
        let mut bytes = module(&objects, &[0x100], true);
        let before = bytes.clone();
        assert_eq!(immortalize(&mut bytes).unwrap(), None);
        assert_eq!(bytes, before);

        let mut plain = wasm_encoder::Module::new().finish();
        assert_eq!(immortalize(&mut plain).unwrap(), None);
    }
}
