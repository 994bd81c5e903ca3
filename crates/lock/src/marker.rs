//! PEP 508 environment markers (with PEP 751's `extras` and `dependency_groups` sets):
//! parsed once, then evaluated against the target a run builds for.

use crate::version::Version;
use std::collections::BTreeSet;

/// The values markers are judged by: one target platform and interpreter, and the extras
/// and dependency groups the run bundles.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    pub implementation_name: String,
    pub platform_python_implementation: String,
    pub implementation_version: String,
    pub python_version: String,
    pub python_full_version: String,
    pub os_name: String,
    pub sys_platform: String,
    pub platform_system: String,
    pub platform_machine: String,
    pub platform_release: String,
    pub platform_version: String,
    pub extras: BTreeSet<String>,
    pub dependency_groups: BTreeSet<String>,
}

impl Environment {
    /// The environment of a Linux interpreter with the wheel platform tag `platform_tag`
    /// (`linux_x86_64`), for `implementation` (`cpython`) at `version`.
    pub fn linux(implementation: &str, version: (u32, u32, u32), platform_tag: &str) -> Self {
        let machine = platform_tag
            .strip_prefix("linux_")
            .or_else(|| platform_tag.split_once("_x86_64").map(|_| "x86_64"))
            .unwrap_or(platform_tag);
        let full = format!("{}.{}.{}", version.0, version.1, version.2);
        Environment {
            implementation_name: implementation.to_string(),
            platform_python_implementation: match implementation {
                "cpython" => "CPython".into(),
                "pypy" => "PyPy".into(),
                other => other.into(),
            },
            implementation_version: full.clone(),
            python_version: format!("{}.{}", version.0, version.1),
            python_full_version: full,
            os_name: "posix".into(),
            sys_platform: "linux".into(),
            platform_system: "Linux".into(),
            platform_machine: machine.to_string(),
            ..Environment::default()
        }
    }

    fn value(&self, name: &str) -> Option<&str> {
        Some(match name {
            "implementation_name" => &self.implementation_name,
            "platform_python_implementation" | "python_implementation" => {
                &self.platform_python_implementation
            }
            "implementation_version" => &self.implementation_version,
            "python_version" => &self.python_version,
            "python_full_version" => &self.python_full_version,
            "os_name" | "os.name" => &self.os_name,
            "sys_platform" | "sys.platform" => &self.sys_platform,
            "platform_system" => &self.platform_system,
            "platform_machine" | "platform.machine" => &self.platform_machine,
            "platform_release" => &self.platform_release,
            "platform_version" => &self.platform_version,
            _ => return None,
        })
    }
}

/// A parsed marker expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    And(Vec<Marker>),
    Or(Vec<Marker>),
    Compare {
        left: Operand,
        op: String,
        right: Operand,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Variable(String),
    Literal(String),
}

const VARIABLES: [&str; 17] = [
    "implementation_name",
    "platform_python_implementation",
    "python_implementation",
    "implementation_version",
    "python_version",
    "python_full_version",
    "os_name",
    "os.name",
    "sys_platform",
    "sys.platform",
    "platform_system",
    "platform_machine",
    "platform.machine",
    "platform_release",
    "platform_version",
    "extra",
    "extras",
];

impl Marker {
    /// Parse `text`; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Marker, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let marker = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(marker),
            Some(token) => Err(format!("unexpected `{}` in marker `{text}`", token.text())),
        }
    }

    /// Whether the marker holds in `env`.
    pub fn evaluate(&self, env: &Environment) -> bool {
        match self {
            Marker::And(parts) => parts.iter().all(|m| m.evaluate(env)),
            Marker::Or(parts) => parts.iter().any(|m| m.evaluate(env)),
            Marker::Compare { left, op, right } => compare(left, op, right, env),
        }
    }
}

fn compare(left: &Operand, op: &str, right: &Operand, env: &Environment) -> bool {
    // The sets of PEP 751: `'cli' in extras`, `'dev' not in dependency_groups`.
    if let (Operand::Literal(item), Operand::Variable(set)) = (left, right) {
        let members = match set.as_str() {
            "extras" => Some(&env.extras),
            "dependency_groups" => Some(&env.dependency_groups),
            _ => None,
        };
        if let Some(members) = members {
            let held = members.contains(&gradient_core::normalize_name(item));
            return match op {
                "in" => held,
                "not in" => !held,
                _ => false,
            };
        }
    }
    // `extra == 'cli'`: true when that extra is among those bundled.
    for (variable, literal) in [(left, right), (right, left)] {
        if let (Operand::Variable(v), Operand::Literal(value)) = (variable, literal) {
            if v == "extra" {
                let held = env.extras.contains(&gradient_core::normalize_name(value));
                return match op {
                    "==" => held,
                    "!=" => !held,
                    _ => false,
                };
            }
        }
    }
    // Version comparisons read the variable's value as the candidate: `'3.10' <= python_version`
    // is `python_version >= '3.10'`.
    let containment = matches!(op, "in" | "not in");
    let (left, op, right) = match (left, right) {
        (Operand::Literal(_), Operand::Variable(_)) if !containment => (right, flipped(op), left),
        _ => (left, op, right),
    };
    let resolve = |operand: &Operand| -> String {
        match operand {
            Operand::Variable(name) => env.value(name).unwrap_or_default().to_string(),
            Operand::Literal(value) => value.clone(),
        }
    };
    let (a, b) = (resolve(left), resolve(right));
    let versioned =
        matches!(left, Operand::Variable(n) if n.ends_with("_version") && n != "platform_version");
    // `python_full_version == '3.11.*'`: a prefix match, as uv writes it.
    let comparable = Version::parse(b.strip_suffix(".*").unwrap_or(&b)).is_some();
    if versioned && !containment && comparable {
        if let Some(held) = Version::parse(&a)
            .and_then(|version| crate::version::satisfies(&version, &format!("{op}{b}")))
        {
            return held;
        }
    }
    match op {
        "==" | "===" => a == b,
        "!=" => a != b,
        "<" => a < b,
        "<=" => a <= b,
        ">" => a > b,
        ">=" => a >= b,
        "in" => b.contains(&a),
        "not in" => !b.contains(&a),
        _ => false,
    }
}

/// The operator that keeps a comparison true when its sides swap.
fn flipped(op: &str) -> &str {
    match op {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        ">=" => "<=",
        other => other,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Op(String),
    And,
    Or,
    Variable(String),
    Literal(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Op(op) => op.clone(),
            Token::And => "and".into(),
            Token::Or => "or".into(),
            Token::Variable(v) => v.clone(),
            Token::Literal(l) => format!("'{l}'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            tokens.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| format!("unclosed quote in marker `{text}`"))?;
            tokens.push(Token::Literal(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if "<>=!~".contains(c) {
            let mut op = String::new();
            while i < chars.len() && "<>=!~".contains(chars[i]) {
                op.push(chars[i]);
                i += 1;
            }
            if !["<", "<=", ">", ">=", "==", "!=", "~=", "==="].contains(&op.as_str()) {
                return Err(format!("unknown operator `{op}` in marker `{text}`"));
            }
            tokens.push(Token::Op(op));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.".contains(chars[i])) {
                word.push(chars[i]);
                i += 1;
            }
            tokens.push(match word.as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "in" => Token::Op("in".into()),
                "not" => Token::Op("not".into()),
                _ if VARIABLES.contains(&word.as_str()) || word == "dependency_groups" => {
                    Token::Variable(word)
                }
                _ => return Err(format!("unknown marker variable `{word}` in `{text}`")),
            });
        } else {
            return Err(format!("unexpected `{c}` in marker `{text}`"));
        }
    }
    // `not in` is one operator.
    let mut merged: Vec<Token> = Vec::new();
    for token in tokens {
        match (merged.last(), &token) {
            (Some(Token::Op(last)), Token::Op(op)) if last == "not" && op == "in" => {
                *merged.last_mut().expect("checked") = Token::Op("not in".into());
            }
            _ => merged.push(token),
        }
    }
    Ok(merged)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// How deep parentheses may nest: real markers use two or three levels; a hostile one must
/// not exhaust the stack.
const MAX_DEPTH: usize = 64;

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Marker, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Marker::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Marker, String> {
        let mut parts = vec![self.atom()?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Marker::And(parts)
        })
    }

    fn atom(&mut self) -> Result<Marker, String> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!(
                    "a marker nested deeper than {MAX_DEPTH} parentheses"
                ));
            }
            let inner = self.or()?;
            self.depth -= 1;
            return match self.next() {
                Some(Token::Close) => Ok(inner),
                _ => Err("a `(` without its `)` in a marker".into()),
            };
        }
        let left = self.operand()?;
        let op = match self.next() {
            Some(Token::Op(op)) if op != "not" => op,
            other => {
                return Err(format!(
                    "expected a comparison operator, found {}",
                    other.map_or("the end".into(), |t| format!("`{}`", t.text()))
                ))
            }
        };
        let right = self.operand()?;
        Ok(Marker::Compare { left, op, right })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Variable(v)) => Ok(Operand::Variable(v)),
            Some(Token::Literal(l)) => Ok(Operand::Literal(l)),
            other => Err(format!(
                "expected a marker variable or a quoted value, found {}",
                other.map_or("the end".into(), |t| format!("`{}`", t.text()))
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        let mut env = Environment::linux("cpython", (3, 11, 7), "linux_x86_64");
        env.extras.insert("cli".into());
        env
    }

    fn holds(text: &str) -> bool {
        Marker::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .evaluate(&env())
    }

    #[test]
    fn markers_evaluate_against_the_target() {
        assert!(holds("python_full_version >= '3.10'"));
        assert!(!holds("python_full_version < '3.10'"));
        assert!(holds("python_version == '3.11'"));
        assert!(!holds("sys_platform == 'win32'"));
        assert!(holds(
            "sys_platform == \"linux\" and platform_machine == 'x86_64'"
        ));
        assert!(!holds("platform_machine == 'aarch64'"));
        assert!(holds(
            "(os_name == 'nt' or os_name == 'posix') and python_version >= '3.9'"
        ));
        assert!(holds(
            "python_version < '3.12' and python_full_version != '3.11.0'"
        ));
        assert!(holds("extra == 'cli'"));
        assert!(!holds("extra == 'docs'"));
        assert!(holds("'cli' in extras"));
        assert!(holds("'dev' not in dependency_groups"));
        assert!(holds("'linux' in sys_platform"));
        assert!(holds("'x86' in platform_machine"));
        assert!(!holds("'x86' not in platform_machine"));
        assert!(holds("python_full_version == '3.11.*'"));
        assert!(!holds("python_full_version != '3.11.*'"));
        assert!(holds("python_version != '3.10.*'"));
        assert!(holds("platform_python_implementation == 'CPython'"));
        assert!(holds("python_version ~= '3.9'"));
        assert!(holds("'3.10' <= python_version"));
        assert!(!holds("'3.12' <= python_version"));
    }

    #[test]
    fn bad_markers_say_what_is_wrong() {
        assert!(Marker::parse("python_version >= ")
            .unwrap_err()
            .contains("the end"));
        assert!(Marker::parse("pyversion == '3'")
            .unwrap_err()
            .contains("pyversion"));
        assert!(Marker::parse("python_version = '3'")
            .unwrap_err()
            .contains("`=`"));
        assert!(Marker::parse("(python_version == '3'")
            .unwrap_err()
            .contains(")"));
        let deep = format!(
            "{}python_version == '3'{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(Marker::parse(&deep).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn aarch64_targets_are_their_own_machine() {
        let env = Environment::linux("cpython", (3, 12, 1), "linux_aarch64");
        assert!(Marker::parse("platform_machine == 'aarch64'")
            .unwrap()
            .evaluate(&env));
    }
}
