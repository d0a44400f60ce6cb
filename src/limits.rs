//! Every size limit nixfront enforces, in one table. Each is far above what a real file or
//! closure needs and below what breaks the gRPC channel to BuildKit on the engines we support
//! (BuildKit 0.8 refuses requests over 4 MiB; an error carries the user's file as its source, and
//! buildx fails on error trailers of many MiB). An error that hits one names it.

/// The user's file (Nixfile or flake.nix), in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// One physical line of the user's file, in bytes.
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// One instruction with its continuation lines joined, in bytes.
pub const MAX_INSTRUCTION_BYTES: usize = 256 << 10;
/// Instructions in one file.
pub const MAX_INSTRUCTIONS: usize = 10_000;
/// The build manifest (`nix path-info --json` of the closure and the plan), in bytes.
pub const MAX_MANIFEST_BYTES: usize = 48 << 20;
/// The memo a build leaves in its image config for inline cache ([`crate::memo`]), in bytes;
/// a bigger one is left out.
pub const MAX_MEMO_BYTES: usize = 1 << 20;
/// The closure record every image config carries for the next build's change report
/// ([`crate::previous`]), in bytes; a bigger one is left out.
pub const MAX_CLOSURE_RECORD_BYTES: usize = 1 << 20;
/// An error message returned to BuildKit, in bytes; longer ones are cut with a note.
pub const MAX_ERROR_BYTES: usize = 16 << 10;
/// User text quoted in a message, in characters; longer text is cut with `…`.
pub const MAX_QUOTED_CHARS: usize = 80;

/// The table above, for documentation and the docs/reference.md check.
pub const ALL: &[(&str, usize, &str)] = &[
    ("MAX_FILE_BYTES", MAX_FILE_BYTES, "the user's file"),
    ("MAX_LINE_BYTES", MAX_LINE_BYTES, "one line of the file"),
    ("MAX_INSTRUCTION_BYTES", MAX_INSTRUCTION_BYTES, "one instruction, continuations joined"),
    ("MAX_INSTRUCTIONS", MAX_INSTRUCTIONS, "instructions in the file"),
    ("MAX_MANIFEST_BYTES", MAX_MANIFEST_BYTES, "the closure manifest a build writes"),
    ("MAX_MEMO_BYTES", MAX_MEMO_BYTES, "the memo an image config carries for inline cache"),
    ("MAX_CLOSURE_RECORD_BYTES", MAX_CLOSURE_RECORD_BYTES, "the closure record an image config carries"),
];

/// `text` cut to at most [`MAX_ERROR_BYTES`] on a character boundary, saying so.
pub fn bounded_message(text: &str) -> String {
    if text.len() <= MAX_ERROR_BYTES {
        return text.to_string();
    }
    let mut end = MAX_ERROR_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} … (message cut at {MAX_ERROR_BYTES} bytes)", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_names_every_limit() {
        let readme = include_str!("../docs/reference.md");
        for (name, _, _) in ALL {
            assert!(readme.contains(&format!("(`{name}`")), "docs/reference.md does not name {name}");
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = bounded_message(&long);
        assert!(cut.len() < MAX_ERROR_BYTES + 64 && cut.ends_with("(message cut at 16384 bytes)"));
        assert_eq!(bounded_message("short"), "short");
    }
}
