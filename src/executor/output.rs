//! Capture of a program's output: decoded as UTF-8 (invalid bytes become
//! U+FFFD) and capped at a byte limit on a character boundary.

/// Output collected so far, always valid UTF-8 and at most `limit` bytes.
#[derive(Debug)]
pub struct OutputCapture {
    limit: usize,
    text: String,
    /// Bytes of a character split across two reads.
    partial: Vec<u8>,
    truncated: bool,
}

impl OutputCapture {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            text: String::new(),
            partial: Vec::new(),
            truncated: false,
        }
    }

    /// Adds bytes read from the program.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.truncated {
            return;
        }
        let mut input = std::mem::take(&mut self.partial);
        input.extend_from_slice(bytes);
        let mut rest = input.as_slice();

        while !rest.is_empty() && !self.truncated {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    self.append(valid);
                    rest = &[];
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    // SAFETY of the unwrap: `valid_up_to` marks a valid prefix.
                    self.append(std::str::from_utf8(valid).unwrap());
                    match error.error_len() {
                        Some(bad) => {
                            self.append("\u{FFFD}");
                            rest = &after[bad..];
                        }
                        None => {
                            // An incomplete character at the end: wait for the next read.
                            self.partial = after.to_vec();
                            rest = &[];
                        }
                    }
                }
            }
        }
    }

    /// Ends the capture: an incomplete character left at the end becomes U+FFFD.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.partial.clear();
            self.append("\u{FFFD}");
        }
    }

    fn append(&mut self, piece: &str) {
        let room = self.limit - self.text.len();
        if piece.len() <= room {
            self.text.push_str(piece);
            return;
        }
        let mut cut = room;
        while !piece.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&piece[..cut]);
        self.truncated = true;
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_character_is_joined() {
        let mut capture = OutputCapture::new(100);
        let bytes = "é".as_bytes();
        capture.push(&bytes[..1]);
        capture.push(&bytes[1..]);
        capture.finish();
        assert_eq!(capture.text(), "é");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut capture = OutputCapture::new(100);
        capture.push(b"a\xffb\x00c");
        capture.finish();
        assert_eq!(capture.text(), "a\u{FFFD}b\u{0}c");
    }

    #[test]
    fn cap_falls_on_character_boundary() {
        let mut capture = OutputCapture::new(5);
        capture.push("abcdé".as_bytes());
        capture.push(b"more");
        assert_eq!(capture.text(), "abcd");
        assert!(capture.truncated());
    }

    #[test]
    fn dangling_partial_character_is_replaced() {
        let mut capture = OutputCapture::new(100);
        capture.push(&"é".as_bytes()[..1]);
        capture.finish();
        assert_eq!(capture.text(), "\u{FFFD}");
    }
}
