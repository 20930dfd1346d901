//! Container log files: stdout and stderr merged in write order, with a
//! progress signal so that followers wake up when bytes arrive.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

/// Bytes written so far and whether the container's output has ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogProgress {
    pub length: u64,
    pub finished: bool,
}

/// One container's log file.
#[derive(Debug)]
pub struct LogStore {
    path: PathBuf,
    progress: watch::Sender<LogProgress>,
}

/// Options of a log read, as the kubelet's `/containerLogs` endpoint takes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery {
    pub follow: bool,
    pub limit_bytes: Option<u64>,
    pub tail_lines: Option<u64>,
}

impl LogStore {
    /// Creates an empty log file at `path`.
    pub async fn create(path: PathBuf) -> std::io::Result<(Arc<Self>, LogWriter)> {
        let file = tokio::fs::File::create(&path).await?;
        let (progress, _) = watch::channel(LogProgress::default());
        let store = Arc::new(Self { path, progress });
        let writer = LogWriter {
            file,
            store: Arc::clone(&store),
        };
        Ok((store, writer))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn progress(&self) -> LogProgress {
        *self.progress.borrow()
    }

    /// Streams the log as `query` selects it. A follow stream ends once the
    /// output has ended and every byte has been sent.
    pub async fn read(
        self: &Arc<Self>,
        query: LogQuery,
    ) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        let progress = self.progress();
        let start = match query.tail_lines {
            Some(lines) => tail_offset(&mut file, progress.length, lines).await?,
            None => 0,
        };
        let reader = LogReader {
            file,
            offset: start,
            remaining: query.limit_bytes.unwrap_or(u64::MAX),
            follow: query.follow,
            progress: self.progress.subscribe(),
        };
        Ok(futures::stream::unfold(reader, |mut reader| async move {
            match reader.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), reader)),
                Ok(None) => None,
                Err(error) => {
                    reader.remaining = 0;
                    Some((Err(error), reader))
                }
            }
        }))
    }
}

/// The writing end of a [`LogStore`], owned by the task that drains the
/// container's output pipe.
pub struct LogWriter {
    file: tokio::fs::File,
    store: Arc<LogStore>,
}

impl LogWriter {
    pub async fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes).await?;
        self.file.flush().await?;
        self.store
            .progress
            .send_modify(|progress| progress.length += bytes.len() as u64);
        Ok(())
    }

    /// Marks the output as ended, which ends follow streams.
    pub fn finish(self) {
        self.store
            .progress
            .send_modify(|progress| progress.finished = true);
    }
}

struct LogReader {
    file: tokio::fs::File,
    offset: u64,
    remaining: u64,
    follow: bool,
    progress: watch::Receiver<LogProgress>,
}

impl LogReader {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        const CHUNK_BYTES: u64 = 64 * 1024;
        loop {
            if self.remaining == 0 {
                return Ok(None);
            }
            let progress = *self.progress.borrow_and_update();
            if self.offset < progress.length {
                let length = (progress.length - self.offset)
                    .min(self.remaining)
                    .min(CHUNK_BYTES);
                let mut buffer = vec![0u8; length as usize];
                self.file.seek(SeekFrom::Start(self.offset)).await?;
                self.file.read_exact(&mut buffer).await?;
                self.offset += length;
                self.remaining -= length;
                return Ok(Some(Bytes::from(buffer)));
            }
            if !self.follow || progress.finished {
                return Ok(None);
            }
            if self.progress.changed().await.is_err() {
                return Ok(None);
            }
        }
    }
}

/// Returns the offset at which the last `lines` lines of the first `length`
/// bytes begin. A final line without a newline counts as a line.
async fn tail_offset(file: &mut tokio::fs::File, length: u64, lines: u64) -> std::io::Result<u64> {
    if lines == 0 {
        return Ok(length);
    }
    let mut content = vec![0u8; length as usize];
    file.seek(SeekFrom::Start(0)).await?;
    file.read_exact(&mut content).await?;
    Ok(tail_start(&content, lines) as u64)
}

fn tail_start(content: &[u8], lines: u64) -> usize {
    let mut end = content.len();
    if content.last() == Some(&b'\n') {
        end -= 1;
    }
    let mut seen = 0;
    for index in (0..end).rev() {
        if content[index] == b'\n' {
            seen += 1;
            if seen == lines {
                return index + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn collect(store: &Arc<LogStore>, query: LogQuery) -> String {
        let chunks: Vec<Bytes> = store
            .read(query)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        String::from_utf8(chunks.concat()).unwrap()
    }

    #[test]
    fn tail_start_counts_lines() {
        assert_eq!(tail_start(b"a\nb\nc\n", 2), 2);
        assert_eq!(tail_start(b"a\nb\nc", 1), 4);
        assert_eq!(tail_start(b"a\nb\n", 5), 0);
    }

    #[tokio::test]
    async fn log_read_applies_tail_and_limit() {
        let directory =
            std::env::temp_dir().join(format!("kube-testbed-logs-{}", std::process::id()));
        tokio::fs::create_dir_all(&directory).await.unwrap();
        let (store, mut writer) = LogStore::create(directory.join("c.log")).await.unwrap();
        writer.append(b"one\ntwo\nthree\n").await.unwrap();
        writer.finish();

        let all = collect(&store, LogQuery::default()).await;
        assert_eq!(all, "one\ntwo\nthree\n");
        let tail = collect(
            &store,
            LogQuery {
                tail_lines: Some(2),
                ..LogQuery::default()
            },
        )
        .await;
        assert_eq!(tail, "two\nthree\n");
        let limited = collect(
            &store,
            LogQuery {
                limit_bytes: Some(5),
                ..LogQuery::default()
            },
        )
        .await;
        assert_eq!(limited, "one\nt");
        tokio::fs::remove_dir_all(&directory).await.unwrap();
    }

    #[tokio::test]
    async fn log_follow_waits_for_output() {
        let directory =
            std::env::temp_dir().join(format!("kube-testbed-follow-{}", std::process::id()));
        tokio::fs::create_dir_all(&directory).await.unwrap();
        let (store, mut writer) = LogStore::create(directory.join("c.log")).await.unwrap();
        writer.append(b"first\n").await.unwrap();

        let reader = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                collect(
                    &store,
                    LogQuery {
                        follow: true,
                        ..LogQuery::default()
                    },
                )
                .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        writer.append(b"second\n").await.unwrap();
        writer.finish();

        let followed = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("follow stream did not end after finish")
            .unwrap();
        assert_eq!(followed, "first\nsecond\n");
        tokio::fs::remove_dir_all(&directory).await.unwrap();
    }
}
