//! Where the scanner's bytes come from: a plain file, a gzip stream of one or more members, or
//! memory. The scanner needs to go back now and then (a wrong `Content-Length`, a fetch of an
//! earlier offset): a plain file seeks; a gzip stream cannot, so it is decoded again from the
//! start, which is rare and still bounded in memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;

use flate2::bufread::MultiGzDecoder;

/// Read buffer size: large sequential reads, a fixed amount of memory.
pub const BUFFER_BYTES: usize = 256 << 10;

/// Where gzip-compressed bytes come from, so a decoder can be rebuilt to rewind.
pub enum GzSource {
    /// A file.
    File(PathBuf),
    /// Bytes in memory (tests).
    Bytes(std::sync::Arc<[u8]>),
}

type GzReader = BufReader<MultiGzDecoder<BufReader<Box<dyn Read + Send>>>>;

/// A readable mbox stream that can go back to an earlier (decompressed) offset.
pub enum Input {
    /// A plain file: rewinding is a seek.
    Plain(BufReader<File>),
    /// A gzip file (all members): rewinding decodes again from the start.
    Gz(GzSource, Box<GzReader>),
    /// Bytes in memory.
    Memory(Cursor<Vec<u8>>),
}

impl Input {
    /// A plain file, positioned at its start.
    pub fn plain(file: File) -> Self {
        Input::Plain(BufReader::with_capacity(BUFFER_BYTES, file))
    }

    /// A gzip stream of one or more members, positioned at the start of the decoded bytes.
    pub fn gz(source: GzSource) -> io::Result<Self> {
        let reader = Box::new(Self::gz_reader(&source)?);
        Ok(Input::Gz(source, reader))
    }

    fn gz_reader(source: &GzSource) -> io::Result<GzReader> {
        let raw: Box<dyn Read + Send> = match source {
            GzSource::File(path) => Box::new(File::open(path)?),
            GzSource::Bytes(bytes) => Box::new(Cursor::new(std::sync::Arc::clone(bytes))),
        };
        let decoder = MultiGzDecoder::new(BufReader::with_capacity(BUFFER_BYTES, raw));
        Ok(BufReader::with_capacity(BUFFER_BYTES, decoder))
    }

    /// Moves to decoded offset `pos`.
    pub fn rewind_to(&mut self, pos: u64) -> io::Result<()> {
        match self {
            Input::Plain(r) => r.seek(SeekFrom::Start(pos)).map(drop),
            Input::Memory(c) => c.seek(SeekFrom::Start(pos)).map(drop),
            Input::Gz(source, reader) => {
                **reader = Self::gz_reader(source)?;
                let skipped = io::copy(&mut reader.by_ref().take(pos), &mut io::sink())?;
                if skipped < pos {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the decompressed stream ends before offset {pos}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Gz(_, r) => r.read(buf),
            Input::Memory(r) => r.read(buf),
        }
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Input::Plain(r) => r.fill_buf(),
            Input::Gz(_, r) => r.fill_buf(),
            Input::Memory(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Input::Plain(r) => r.consume(amount),
            Input::Gz(_, r) => r.consume(amount),
            Input::Memory(r) => r.consume(amount),
        }
    }
}
