//! The body of a Redfish multipart HTTP push (DSP0266, "Multipart HTTP push updates"): a
//! `multipart/form-data` document with an `UpdateParameters` part (JSON) and an `UpdateFile`
//! part (the package), streamed from the package's reader with its length known beforehand,
//! so the request carries a `Content-Length` and the package is never held in memory.

use std::io::{Cursor, Read};

use sha2::{Digest, Sha256};

/// The bytes of a multipart body: the head, the package, the tail.
pub type MultipartReader<R> = std::io::Chain<std::io::Chain<Cursor<Vec<u8>>, R>, Cursor<Vec<u8>>>;

/// A multipart body ready to send: its content type (with the boundary), its exact length and
/// a reader of its bytes.
pub struct MultipartBody<R: Read> {
    pub content_type: String,
    pub len: u64,
    pub reader: MultipartReader<R>,
}

/// Frame `file` (`file_len` bytes, sent as `file_name`) after `parameters` (the
/// `UpdateParameters` JSON).
pub fn multipart_body<R: Read>(parameters: &str, file_name: &str, file: R, file_len: u64) -> MultipartBody<R> {
    let boundary = boundary(parameters, file_name, file_len);
    // A name with a quote or a line break would break the part's header; packages are named by
    // kiln's staging (hex digest and the recipe's file name), but keep the header sound anyway.
    let safe_name: String = file_name.chars().map(|c| if c == '"' || c.is_control() { '_' } else { c }).collect();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"UpdateParameters\"\r\n\
         Content-Type: application/json\r\n\r\n{parameters}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"UpdateFile\"; filename=\"{safe_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
    let len = head.len() as u64 + file_len + tail.len() as u64;
    MultipartBody {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        len,
        reader: Cursor::new(head).chain(file).chain(Cursor::new(tail)),
    }
}

/// A boundary that a package will not contain by chance: 32 hex digits of a digest over the
/// request, the time and the process.
fn boundary(parameters: &str, file_name: &str, file_len: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut h = Sha256::new();
    h.update(parameters.as_bytes());
    h.update(file_name.as_bytes());
    h.update(file_len.to_le_bytes());
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    format!("kiln-{}", &hex::encode(h.finalize())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_two_parts_of_the_announced_length() {
        let file = b"\x00\x01binary\r\n--not-a-boundary\xff".to_vec();
        let mut body = multipart_body(r#"{"Targets":[]}"#, "bmc.fwpkg", Cursor::new(file.clone()), file.len() as u64);
        let mut bytes = Vec::new();
        body.reader.read_to_end(&mut bytes).expect("read");
        assert_eq!(bytes.len() as u64, body.len);
        let boundary = body.content_type.strip_prefix("multipart/form-data; boundary=").expect("boundary");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"UpdateParameters\"")));
        assert!(text.contains("Content-Type: application/json\r\n\r\n{\"Targets\":[]}\r\n"));
        assert!(text.contains("name=\"UpdateFile\"; filename=\"bmc.fwpkg\"\r\nContent-Type: application/octet-stream"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        let start = bytes.windows(4).position(|w| w == b"\x00\x01bi").expect("file part");
        assert_eq!(&bytes[start..start + file.len()], &file[..]);
    }

    #[test]
    fn a_file_name_cannot_break_the_part_header() {
        let mut body = multipart_body("{}", "a\"b\r\nc", Cursor::new(Vec::new()), 0);
        let mut text = String::new();
        body.reader.read_to_string(&mut text).expect("read");
        assert!(text.contains("filename=\"a_b__c\""), "{text}");
    }
}
