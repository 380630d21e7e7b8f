//! Where image bytes come from: a file (read where the block map says) or a
//! forward-only stream (stdin, an HTTP body on a node's agent).
//!
//! The writer asks for ranges in increasing order and never for the same byte
//! twice, so a stream works as well as a file: the gaps between ranges are
//! read and dropped. Each byte of the source is read once.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

/// A source of image bytes read at increasing offsets.
pub trait ImageSource: Send {
    /// What to call the source in messages: a path or "standard input".
    fn name(&self) -> String;
    /// The image's length when known before reading (a file's size).
    fn size(&self) -> Option<u64>;
    /// Fill `buf` with the bytes at `offset`. Offsets never go backwards.
    /// A source that ends early answers `UnexpectedEof`.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A raw image file.
pub struct FileSource {
    file: File,
    path: PathBuf,
    len: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> io::Result<Self> {
        // Its length is the image's: a FIFO or a device has none (and a FIFO
        // would block the open).
        let file = crate::input::open_regular(path, crate::input::Input::Artifact)?;
        let len = file.metadata()?.len();
        // Only a hint to read ahead harder; a filesystem that ignores it is fine.
        let _ = posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL);
        Ok(FileSource { file, path: path.to_path_buf(), len })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ImageSource for FileSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> Option<u64> {
        Some(self.len)
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// A forward-only stream holding the whole raw image, holes included.
pub struct StreamSource<R> {
    reader: R,
    name: String,
    pos: u64,
    scratch: Vec<u8>,
}

impl<R: Read + Send> StreamSource<R> {
    /// `name` (a path or URL) names the image in reports and errors, with any user and password
    /// of a URL hidden.
    pub fn new(reader: R, name: impl Into<String>) -> Self {
        let name = crate::redact::userinfo(&name.into()).into_owned();
        StreamSource { reader, name, pos: 0, scratch: Vec::new() }
    }
}

impl<R: Read + Send> ImageSource for StreamSource<R> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> Option<u64> {
        None
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset < self.pos {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a stream cannot go back from byte {} to {offset}", self.pos),
            ));
        }
        if self.scratch.is_empty() && offset > self.pos {
            self.scratch = vec![0u8; 1 << 20];
        }
        while self.pos < offset {
            let n = ((offset - self.pos) as usize).min(self.scratch.len());
            self.reader.read_exact(&mut self.scratch[..n])?;
            self.pos += n as u64;
        }
        self.reader.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_skips_gaps_and_reports_its_end() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 256) as u8).collect();
        let mut s = StreamSource::new(&data[..], "test");
        let mut buf = [0u8; 10];
        s.read_exact_at(100, &mut buf).expect("read");
        assert_eq!(&buf, &data[100..110]);
        s.read_exact_at(5000, &mut buf).expect("read");
        assert_eq!(&buf, &data[5000..5010]);
        assert_eq!(s.read_exact_at(0, &mut buf).map_err(|e| e.kind()), Err(io::ErrorKind::InvalidInput));
        assert_eq!(s.read_exact_at(9995, &mut buf).map_err(|e| e.kind()), Err(io::ErrorKind::UnexpectedEof));
    }
}
