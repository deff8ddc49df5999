//! Cutting a document into chunks the dense model reads whole.
//!
//! Blocks (paragraphs, headings) are packed greedily into chunks of at most `budget` tokens,
//! counted with the dense model's own tokenizer: the model's `max_seq_length` less its two
//! special tokens, so no chunk is truncated when encoded. A heading always starts a new chunk;
//! a block longer than the budget is cut into windows at word boundaries. Consecutive chunks
//! of one section share about `overlap` tokens (one eighth of the budget) so that a sentence cut
//! at a boundary is whole in one of them. Without a dense model, whitespace-separated words
//! stand in for tokens (200 per chunk, 25 overlapping).

use sieve_encoders::{EncoderError, SentenceTransformer};

use super::extract::Block;

/// Token byte offsets of a text, `(start, end)` in order.
pub type Tokenize<'a> = Box<dyn Fn(&str) -> Result<Vec<(usize, usize)>, String> + 'a>;

/// Chunk size and overlap used without a dense model, in words.
pub const FALLBACK_WORDS: usize = 200;

/// How chunks are measured and cut.
///
/// ```
/// use sieve_engine::documents::{Chunker, Format, extract};
///
/// let note = extract(Format::Markdown, "# Tea\n\nSteep green tea briefly.\n\n# Coffee\n\nGrind just before brewing.");
/// let chunks = Chunker::words().chunk(&note.text, &note.blocks)?;
/// let texts: Vec<&str> = chunks.iter().map(|&(start, end)| &note.text[start..end]).collect();
/// assert_eq!(texts, ["# Tea\n\nSteep green tea briefly.", "# Coffee\n\nGrind just before brewing."]);
/// # Ok::<(), String>(())
/// ```
pub struct Chunker<'a> {
    tokenize: Tokenize<'a>,
    /// Most tokens in one chunk.
    pub budget: usize,
    /// Tokens shared by consecutive chunks of a section.
    pub overlap: usize,
}

impl<'a> Chunker<'a> {
    /// Chunks of at most `budget` tokens as `tokenize` counts them, overlapping by `budget / 8`.
    pub fn new(tokenize: Tokenize<'a>, budget: usize) -> Self {
        let budget = budget.max(8);
        Chunker {
            tokenize,
            budget,
            overlap: budget / 8,
        }
    }

    /// Words as tokens: the fallback when the collection has no dense model.
    pub fn words() -> Chunker<'static> {
        Chunker::new(Box::new(|text| Ok(words(text))), FALLBACK_WORDS)
    }

    /// Chunks the model reads whole: tokens counted with its tokenizer (a copy, without
    /// truncation), at most its `max_seq_length` less the two special tokens and the document
    /// prompt it prepends.
    ///
    /// ```no_run
    /// use sieve_encoders::SentenceTransformer;
    /// use sieve_engine::documents::Chunker;
    ///
    /// let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
    /// let chunker = Chunker::for_model(&model)?;
    /// assert_eq!(chunker.budget, 254); // max_seq_length 256, less [CLS] and [SEP]
    /// # Ok::<(), sieve_encoders::EncoderError>(())
    /// ```
    pub fn for_model(model: &SentenceTransformer) -> Result<Chunker<'static>, EncoderError> {
        let tokenizer = model.tokenizer().clone();
        let prompt_tokens = match model.prompts().get("document") {
            Some(prompt) => tokenizer.token_offsets(prompt)?.len(),
            None => 0,
        };
        let budget = model.max_seq_length().saturating_sub(2 + prompt_tokens);
        let tokenize = move |text: &str| tokenizer.token_offsets(text).map_err(|e| e.to_string());
        Ok(Chunker::new(Box::new(tokenize), budget))
    }

    /// The chunks of `text` (whose paragraphs are `blocks`) as byte ranges, in order; an error
    /// is the tokenizer's.
    pub fn chunk(&self, text: &str, blocks: &[Block]) -> Result<Vec<(usize, usize)>, String> {
        let tokens: Vec<(usize, usize)> = (self.tokenize)(text)?
            .into_iter()
            .map(|(s, e)| (floor_boundary(text, s), ceil_boundary(text, e)))
            .filter(|(s, e)| s < e)
            .collect();
        Ok(pack(&tokens, blocks, self.budget, self.overlap)
            .into_iter()
            .map(|(s, e)| (tokens[s].0, tokens[e - 1].1))
            .collect())
    }
}

/// Text tokenized at a time: a file is cut into sections of about this many bytes, at block
/// boundaries (a longer block at whitespace), each chunked on its own. Files below it chunk
/// exactly as a whole; a huge one never has all its tokens in memory at once.
pub const SECTION_BYTES: usize = 1 << 20;

/// A run of consecutive blocks chunked on its own.
#[derive(Debug, PartialEq)]
pub struct Section {
    /// Its bytes in the text.
    pub range: std::ops::Range<usize>,
    /// Its blocks, relative to `range.start`.
    pub blocks: Vec<Block>,
}

/// `blocks` of `text` gathered into sections of at most `max` bytes (from the first block's start
/// to the last one's end); a block longer than `max` is cut at the last whitespace before each
/// `max` bytes (or at a character boundary when it has none) into sections of its own.
///
/// ```
/// use sieve_engine::documents::{Format, extract, sections};
///
/// let text = extract(Format::Text, "first paragraph\n\nsecond paragraph");
/// let parts = sections(&text.text, &text.blocks, 20);
/// assert_eq!(parts.len(), 2); // both together are longer than 20 bytes
/// assert_eq!(&text.text[parts[1].range.clone()], "second paragraph");
/// ```
pub fn sections(text: &str, blocks: &[Block], max: usize) -> Vec<Section> {
    let max = max.max(1);
    let mut out: Vec<Section> = Vec::new();
    let mut current: Option<Section> = None;
    let close = |current: &mut Option<Section>, out: &mut Vec<Section>| out.extend(current.take());
    for block in blocks {
        if block.end - block.start > max {
            close(&mut current, &mut out);
            let mut start = block.start;
            let mut heading = block.heading;
            while start < block.end {
                let end = if block.end - start <= max {
                    block.end
                } else {
                    let limit = floor_boundary(text, start + max);
                    match text[start..limit].rfind(char::is_whitespace) {
                        Some(i) if i > 0 => start + i,
                        _ if limit > start => limit,
                        // A first character longer than `max` bytes.
                        _ => ceil_boundary(text, start + 1),
                    }
                };
                let blocks = vec![Block {
                    start: 0,
                    end: end - start,
                    heading,
                }];
                out.push(Section {
                    range: start..end,
                    blocks,
                });
                heading = false;
                start = end;
            }
            continue;
        }
        if let Some(section) = &current
            && block.end - section.range.start > max
        {
            close(&mut current, &mut out);
        }
        let section = current.get_or_insert_with(|| Section {
            range: block.start..block.start,
            blocks: Vec::new(),
        });
        let base = section.range.start;
        section.range.end = block.end;
        section.blocks.push(Block {
            start: block.start - base,
            end: block.end - base,
            heading: block.heading,
        });
    }
    close(&mut current, &mut out);
    out
}

/// Byte offsets of whitespace-separated words.
pub(crate) fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Token-index ranges `[start, end)` of the chunks.
fn pack(tokens: &[(usize, usize)], blocks: &[Block], budget: usize, overlap: usize) -> Vec<(usize, usize)> {
    let word_start = |i: usize| i == 0 || tokens[i].0 > tokens[i - 1].1;
    // Moves `i` back to the start of its word, not below `min`; stays put when there is none.
    let snap = |i: usize, min: usize| {
        let mut j = i;
        while j > min && !word_start(j) {
            j -= 1;
        }
        if word_start(j) { j } else { i }
    };
    let mut chunks = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for block in blocks {
        let a = tokens.partition_point(|t| t.0 < block.start);
        let b = tokens.partition_point(|t| t.0 < block.end);
        if a >= b {
            continue;
        }
        if block.heading
            && let Some(done) = current.take()
        {
            chunks.push(done);
        }
        if let Some((s, _)) = current
            && b - s <= budget
        {
            current = Some((s, b));
            continue;
        }
        let mut start = a;
        if let Some((s, e)) = current.take() {
            chunks.push((s, e));
            let with_overlap = snap(e.saturating_sub(overlap).max(s + 1), s + 1);
            if b - with_overlap <= budget {
                current = Some((with_overlap, b));
                continue;
            }
            if b - a <= budget {
                current = Some((a, b));
                continue;
            }
            start = with_overlap.max(a.saturating_sub(overlap)).min(a);
        }
        if b - start <= budget {
            current = Some((start, b));
            continue;
        }
        // A block longer than the budget: windows cut at word starts, overlapping.
        loop {
            let mut end = (start + budget).min(b);
            if end < b {
                let snapped = snap(end, start + budget / 2);
                if snapped > start {
                    end = snapped;
                }
            }
            if end >= b {
                current = Some((start, b));
                break;
            }
            chunks.push((start, end));
            let next = snap(end.saturating_sub(overlap), start + 1).max(start + 1);
            start = next;
        }
    }
    chunks.extend(current);
    chunks
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{Format, extract};

    fn chunks_of(text: &str, format: Format, budget: usize) -> Vec<String> {
        let e = extract(format, text);
        Chunker::new(Box::new(|t| Ok(words(t))), budget)
            .chunk(&e.text, &e.blocks)
            .unwrap()
            .into_iter()
            .map(|(s, end)| e.text[s..end].to_string())
            .collect()
    }

    fn numbered(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn small_paragraphs_are_packed_and_headings_start_chunks() {
        let text = "# A\n\none two\n\nthree four\n\n# B\n\nfive";
        assert_eq!(
            chunks_of(text, Format::Markdown, 16),
            ["# A\n\none two\n\nthree four", "# B\n\nfive"]
        );
    }

    #[test]
    fn chunks_respect_the_budget_and_overlap() {
        let text = format!("{}\n\n{}", numbered(0, 10), numbered(10, 20));
        let chunks = chunks_of(&text, Format::Text, 16);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], numbered(0, 10));
        // overlap 2 words: the second chunk repeats the first's last two words.
        assert!(chunks[1].starts_with("w8 w9\n\nw10"), "{chunks:?}");
        for c in &chunks {
            assert!(words(c).len() <= 16);
        }
    }

    #[test]
    fn long_blocks_are_cut_into_overlapping_windows() {
        let text = numbered(0, 50);
        let chunks = chunks_of(&text, Format::Text, 16);
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(words(c).len() <= 16, "{c}");
        }
        assert!(chunks[0].starts_with("w0 ") && chunks.last().unwrap().ends_with("w49"));
        assert!(chunks[1].starts_with("w14 "), "{chunks:?}");
        // Every word is in some chunk.
        for i in 0..50 {
            let w = format!("w{i}");
            assert!(chunks.iter().any(|c| c.split_whitespace().any(|x| x == w)), "{w}");
        }
    }

    /// Sections cover every block's bytes once, in order, within the size bound; a file below
    /// the bound is one section, so it chunks exactly as before.
    #[test]
    fn sections_bound_the_text_chunked_at_a_time() {
        let text = format!(
            "{}\n\n{}\n\n# H\n\n{}",
            numbered(0, 30),
            numbered(30, 40),
            numbered(40, 300)
        );
        let e = extract(Format::Markdown, &text);
        let whole = sections(&e.text, &e.blocks, e.text.len());
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].range, e.blocks[0].start..e.blocks.last().unwrap().end);
        for max in [50, 200, 1000] {
            let parts = sections(&e.text, &e.blocks, max);
            assert!(parts.len() > 1, "max {max}");
            let mut covered = String::new();
            for p in &parts {
                assert!(p.range.len() <= max, "max {max}: {:?}", p.range);
                for b in &p.blocks {
                    assert!(b.start < b.end && b.end <= p.range.len());
                    covered.push_str(&e.text[p.range.start + b.start..p.range.start + b.end]);
                    covered.push(' ');
                }
            }
            let words_in = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
            assert_eq!(words_in(&covered), words_in(&e.text), "max {max}");
            // The heading still starts its block.
            assert!(parts.iter().any(|p| p.blocks.iter().any(|b| b.heading)));
        }
        // A block without whitespace is cut at character boundaries.
        let solid = "é".repeat(100);
        let block = [Block {
            start: 0,
            end: solid.len(),
            heading: false,
        }];
        let parts = sections(&solid, &block, 33);
        assert!(
            parts
                .iter()
                .all(|p| p.range.len() <= 33 && solid.is_char_boundary(p.range.start))
        );
        assert_eq!(parts.last().unwrap().range.end, solid.len());
    }

    #[test]
    fn empty_text_has_no_chunks() {
        assert!(chunks_of("  \n\n ", Format::Text, 16).is_empty());
    }
}
