//! The code blocks of the README and `docs/`, for the tests that run their
//! shell commands and parse their configurations.

/// A fenced code block of a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// The info string's first word (`sh`, `rust`, `toml`, …).
    pub lang: String,
    /// The line of the opening fence (1-based).
    pub line: usize,
    /// The text between the fences.
    pub text: String,
}

/// Every fenced code block of `markdown`, in order.
pub fn code_blocks(markdown: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<CodeBlock> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(CodeBlock {
                    lang: info
                        .split([',', ' '])
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    line: i + 1,
                    text: String::new(),
                });
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The commands of a shell block: comments and blank lines dropped, lines
/// ending in `\` joined with the next.
pub fn shell_commands(block: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                // A trailing comment (`cmd   # what it does`) is not an argument.
                let line = match line.find("  #").or_else(|| line.find(" # ")) {
                    Some(at) => line[..at].trim_end(),
                    None => line,
                };
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        commands.push(current);
    }
    commands
}

/// Splits a command line into words as a POSIX shell would for the simple
/// lines the docs hold: spaces separate, single and double quotes group.
/// Leading `NAME=value` words are returned apart, as the environment.
pub fn split_command(line: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    let mut env = Vec::new();
    while let Some((name, value)) = words.first().and_then(|w| w.split_once('=')) {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            break;
        }
        env.push((name.to_string(), value.to_string()));
        words.remove(0);
    }
    (env, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_commands_and_words_are_read_as_a_shell_reads_them() {
        let md = "text\n```sh\n# a comment\nlake run \\\n  --input x   # trailing\n\nlake sql \"SELECT 'a b'\"\n```\n```toml,x\nk = 1\n```\n";
        let blocks = code_blocks(md);
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].lang.as_str(), blocks[0].line), ("sh", 2));
        assert_eq!(blocks[1].lang, "toml");
        let commands = shell_commands(&blocks[0].text);
        assert_eq!(
            commands,
            ["lake run --input x", "lake sql \"SELECT 'a b'\""]
        );
        let (env, words) = split_command("A_B=1 lake sql \"SELECT 'a b'\" ''");
        assert_eq!(env, [("A_B".to_string(), "1".to_string())]);
        assert_eq!(words, ["lake", "sql", "SELECT 'a b'", ""]);
    }
}
