//! Bitcoin's wire encoding helpers shared by the builders.

/// Appends a compact-size (varint) integer in its canonical, shortest form.
pub(crate) fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Appends a compact-size length followed by the bytes.
pub(crate) fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_compact_size(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_size_boundaries() {
        let enc = |n: u64| {
            let mut v = Vec::new();
            write_compact_size(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(0xfc), [0xfc]);
        assert_eq!(enc(0xfd), [0xfd, 0xfd, 0]);
        assert_eq!(enc(0xffff), [0xfd, 0xff, 0xff]);
        assert_eq!(enc(0x1_0000), [0xfe, 0, 0, 1, 0]);
        assert_eq!(enc(0x1_0000_0000), [0xff, 0, 0, 0, 0, 1, 0, 0, 0]);
    }
}
