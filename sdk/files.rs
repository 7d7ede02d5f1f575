//! Files a user names as input (a token file, a parameters file), read with bounds.
//!
//! Every such file is read by [`read_input_file`] and by nothing else: at most a size fit for
//! what it holds ([`TOKEN_FILE_MAX_BYTES`], [`PARAMETERS_FILE_MAX_BYTES`]), within
//! [`INPUT_FILE_WAIT`]. A directory, a device or a socket is refused before anything is read;
//! a pipe is read (`<(pass show coder)` gives one), but only for so long and so much, so that a
//! FIFO nobody writes to, or `/dev/zero` behind a link, ends with a clear error instead of
//! hanging or filling the memory. Nothing is sent to any server before the file is read.

use std::{io::Read, path::Path, sync::mpsc, time::Duration};

use crate::{Error, Result};

/// The most a token file may hold (a token is a line of a few hundred bytes at most).
pub const TOKEN_FILE_MAX_BYTES: u64 = 64 * 1024;

/// The most a parameters file may hold.
pub const PARAMETERS_FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// How long reading an input file may take (a pipe whose writer is slow or absent).
pub const INPUT_FILE_WAIT: Duration = Duration::from_secs(5);

/// Reads the text of an input file: `what` names it in errors (`the token file`), `max_bytes`
/// bounds it. [`Error::InvalidInput`] when it is missing, unreadable, not a regular file or a
/// pipe, larger than `max_bytes`, not UTF-8, or not read within [`INPUT_FILE_WAIT`].
pub fn read_input_file(path: &Path, what: &str, max_bytes: u64) -> Result<String> {
    read_input_file_within(path, what, max_bytes, INPUT_FILE_WAIT)
}

/// [`read_input_file`] with another time bound.
pub fn read_input_file_within(
    path: &Path,
    what: &str,
    max_bytes: u64,
    wait: Duration,
) -> Result<String> {
    let shown = path.display().to_string();
    let refuse =
        |why: String| Error::InvalidInput(format!("{what} {shown} {why}; nothing was sent"));
    let meta = std::fs::metadata(path).map_err(|e| {
        refuse(format!(
            "cannot be read ({e}): give the path of a readable file"
        ))
    })?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(refuse(
            "is a directory: give the path of the file itself".into(),
        ));
    }
    #[cfg(unix)]
    let pipe = {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_block_device() || kind.is_char_device() || kind.is_socket() {
            return Err(refuse(
                "is a device or a socket, not a file: give the path of a regular file (or a \
                 pipe)"
                    .into(),
            ));
        }
        kind.is_fifo()
    };
    #[cfg(not(unix))]
    let pipe = false;
    if !pipe && !kind.is_file() {
        return Err(refuse(
            "is not a regular file: give the path of a regular file".into(),
        ));
    }
    let too_large = || {
        refuse(format!(
            "is larger than {}: it cannot be the file meant; give the right file",
            size_text(max_bytes)
        ))
    };
    if kind.is_file() && meta.len() > max_bytes {
        return Err(too_large());
    }
    // Opening a FIFO blocks until a writer comes, and reading it until the writer is done: both
    // happen on a thread of their own, waited for at most `wait` (a thread still blocked then is
    // left behind; it holds at most `max_bytes`).
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("read-input-file".into())
        .spawn(move || {
            let read = std::fs::File::open(&owned).and_then(|f| {
                let mut buf = Vec::new();
                f.take(max_bytes.saturating_add(1)).read_to_end(&mut buf)?;
                Ok(buf)
            });
            let _ = tx.send(read);
        })
        .map_err(|e| refuse(format!("cannot be read ({e})")))?;
    let bytes = match rx.recv_timeout(wait) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(refuse(format!(
                "cannot be read ({e}): give the path of a readable file"
            )));
        }
        Err(_) => {
            return Err(refuse(format!(
                "gave no end of input within {}: nothing wrote to it (or the writer did not \
                 finish); make sure what writes to it runs and ends, or give a regular file",
                humantime::format_duration(wait)
            )));
        }
    };
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|_| refuse("is not UTF-8 text: give the file that holds the text".into()))
}

fn size_text(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_small_file_and_refuses_a_large_one_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "tok\n").unwrap();
        assert_eq!(
            read_input_file(&small, "the token file", 16).unwrap(),
            "tok\n"
        );
        let large = dir.path().join("large");
        std::fs::write(&large, vec![b'x'; 17]).unwrap();
        let e = read_input_file(&large, "the token file", 16).unwrap_err();
        assert!(e.to_string().contains("larger than 16 bytes"), "{e}");
        let e = read_input_file(dir.path(), "the token file", 16).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(size_text(TOKEN_FILE_MAX_BYTES), "64 KiB");
        assert_eq!(size_text(PARAMETERS_FILE_MAX_BYTES), "4 MiB");
    }
}
