//! `-o jsonpath=TEMPLATE`: the subset of kubectl's JSONPath templates
//! (client-go's `util/jsonpath`) that people type, over the JSON form that
//! `-o json` prints.
//!
//! Supported, with kubectl's meaning: text outside braces (printed as is),
//! `{.field.sub}`, `{['field.with.dots']}`, `{.labels.app\.kubernetes\.io/name}`,
//! `{$}` and `{@}`, `{.items[*].key}` and `{.items.*}`, indices and slices
//! (`[0]`, `[-1]`, `[1:3]`, `[-2:]`, `[::2]`), unions (`[0,2]`,
//! `['key','holder']`), recursive descent (`{..holder}`), filters
//! (`[?(@.state=="held")]`, `[?(@.ttlSeconds>30)]`, `[?(@.fencingToken)]`),
//! `{range .items[*]}...{end}` and quoted text (`{"\n"}`, `{"\t"}`).
//!
//! As in kubectl: the values of one expression are printed separated by a
//! space; strings as they are, numbers and booleans as JSON, objects and
//! arrays as compact JSON; a missing field prints nothing; an index out of
//! range is an error. Unlike kubectl, `null` prints nothing (kubectl's JSON
//! form has no nulls to print).

use serde_json::Value;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Path(Path),
    Range(Path, Vec<Node>),
}

/// A path: where it starts, then its steps.
#[derive(Clone, Debug, PartialEq)]
struct Path {
    from_root: bool,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name` or `['name']`; several for `['a','b']`.
    Fields(Vec<String>),
    /// `.*` or `[*]`.
    Wildcard,
    /// `..name` or `..*` (`None`).
    Descend(Option<String>),
    /// `[1]`, `[-1]`, `[0,2]`.
    Indices(Vec<i64>),
    /// `[start:end:step]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `[?(...)]`.
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Operand,
    /// `None`: the left side exists (and is not null or false).
    compare: Option<(Comparison, Operand)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Path(Path),
    Literal(Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Template {
    /// Parses `source` (without the `jsonpath=` prefix).
    ///
    /// # Errors
    ///
    /// A message like kubectl's: `error parsing jsonpath TEMPLATE, REASON`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let fail = |reason: String| format!("error parsing jsonpath {source}, {reason}");
        let actions = split_actions(source).map_err(fail)?;
        let mut stack: Vec<(Option<Path>, Vec<Node>)> = vec![(None, Vec::new())];
        for action in actions {
            let node = match action {
                Action::Text(text) => Node::Text(text),
                Action::Code(code) => {
                    let code = code.trim();
                    if code == "end" {
                        let (Some(path), body) = stack.pop().unwrap_or((None, Vec::new())) else {
                            return Err(fail("not in range, nothing to end".to_owned()));
                        };
                        Node::Range(path, body)
                    } else if let Some(rest) = code.strip_prefix("range ") {
                        let path = parse_path(rest.trim()).map_err(fail)?;
                        stack.push((Some(path), Vec::new()));
                        continue;
                    } else if code.starts_with('"') || code.starts_with('\'') {
                        Node::Text(unquote(code).map_err(fail)?)
                    } else {
                        Node::Path(parse_path(code).map_err(fail)?)
                    }
                }
            };
            match stack.last_mut() {
                Some((_, nodes)) => nodes.push(node),
                None => return Err(fail("not in range, nothing to end".to_owned())),
            }
        }
        match stack.pop() {
            Some((None, nodes)) if stack.is_empty() => Ok(Self {
                source: source.to_owned(),
                nodes,
            }),
            _ => Err(fail("range without end".to_owned())),
        }
    }

    /// The template applied to `value`.
    ///
    /// # Errors
    ///
    /// A message like kubectl's for an index out of range or a value that
    /// cannot be iterated.
    pub fn render(&self, value: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, value, value, &mut out).map_err(|reason| {
            format!(
                "error executing jsonpath {:?}: Error executing template: {reason}",
                self.source
            )
        })?;
        Ok(out)
    }
}

fn render_nodes(
    nodes: &[Node],
    root: &Value,
    current: &Value,
    out: &mut String,
) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let values = evaluate(path, root, current)?;
                let texts: Vec<String> = values.into_iter().filter_map(text_of).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(path, body) => {
                let values = evaluate(path, root, current)?;
                let items: Vec<&Value> = match values.as_slice() {
                    [Value::Array(items)] => items.iter().collect(),
                    _ => values,
                };
                for item in items {
                    render_nodes(body, root, item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// How a value prints; `None` for null.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn evaluate<'v>(
    path: &Path,
    root: &'v Value,
    current: &'v Value,
) -> Result<Vec<&'v Value>, String> {
    let mut values = vec![if path.from_root { root } else { current }];
    for step in &path.steps {
        let mut next = Vec::new();
        for value in values {
            apply(step, value, root, &mut next)?;
        }
        values = next;
    }
    Ok(values)
}

fn apply<'v>(
    step: &Step,
    value: &'v Value,
    root: &'v Value,
    next: &mut Vec<&'v Value>,
) -> Result<(), String> {
    match step {
        Step::Fields(names) => {
            if let Value::Object(map) = value {
                next.extend(names.iter().filter_map(|name| map.get(name)));
            }
        }
        Step::Wildcard => match value {
            Value::Object(map) => next.extend(map.values()),
            Value::Array(items) => next.extend(items.iter()),
            _ => {}
        },
        Step::Descend(name) => descend(value, name.as_deref(), next),
        Step::Indices(indices) => {
            let Value::Array(items) = value else {
                return Ok(());
            };
            for &index in indices {
                let length = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let at = if index < 0 { index + length } else { index };
                let item = usize::try_from(at).ok().and_then(|at| items.get(at));
                match item {
                    Some(item) => next.push(item),
                    None => {
                        return Err(format!(
                            "array index out of bounds: index {index}, length {length}"
                        ))
                    }
                }
            }
        }
        Step::Slice(start, end, step) => {
            let Value::Array(items) = value else {
                return Ok(());
            };
            let length = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let clamp = |bound: i64| {
                let bound = if bound < 0 { bound + length } else { bound };
                bound.clamp(0, length)
            };
            let start = start.map_or(0, clamp);
            let end = end.map_or(length, clamp);
            let step = step.unwrap_or(1);
            if step <= 0 {
                return Err(format!("step must be positive, got {step}"));
            }
            let mut at = start;
            while at < end {
                if let Some(item) = usize::try_from(at).ok().and_then(|at| items.get(at)) {
                    next.push(item);
                }
                at += step;
            }
        }
        Step::Filter(filter) => {
            let Value::Array(items) = value else {
                return Ok(());
            };
            for item in items {
                if filter.matches(root, item)? {
                    next.push(item);
                }
            }
        }
    }
    Ok(())
}

fn descend<'v>(value: &'v Value, name: Option<&str>, next: &mut Vec<&'v Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if name.is_none_or(|name| name == key) {
                    next.push(child);
                }
            }
            for child in map.values() {
                descend(child, name, next);
            }
        }
        Value::Array(items) => {
            for item in items {
                if name.is_none() {
                    next.push(item);
                }
                descend(item, name, next);
            }
        }
        _ => {}
    }
}

impl Filter {
    fn matches(&self, root: &Value, item: &Value) -> Result<bool, String> {
        let left = self.left.values(root, item)?;
        let Some((comparison, right)) = &self.compare else {
            return Ok(left
                .iter()
                .any(|value| !matches!(value, Value::Null | Value::Bool(false))));
        };
        let right = right.values(root, item)?;
        Ok(left
            .iter()
            .any(|l| right.iter().any(|r| compare(l, *comparison, r))))
    }
}

impl Operand {
    fn values<'v>(&'v self, root: &'v Value, item: &'v Value) -> Result<Vec<&'v Value>, String> {
        match self {
            Self::Path(path) => evaluate(path, root, item),
            Self::Literal(value) => Ok(vec![value]),
        }
    }
}

fn compare(left: &Value, comparison: Comparison, right: &Value) -> bool {
    use std::cmp::Ordering;
    let order = match (left, right) {
        (Value::Number(l), Value::Number(r)) => l
            .as_f64()
            .zip(r.as_f64())
            .and_then(|(l, r)| l.partial_cmp(&r)),
        (Value::String(l), Value::String(r)) => Some(l.cmp(r)),
        (l, r) => (l == r).then_some(Ordering::Equal),
    };
    match comparison {
        Comparison::Eq => order == Some(Ordering::Equal),
        Comparison::Ne => order != Some(Ordering::Equal),
        Comparison::Lt => order == Some(Ordering::Less),
        Comparison::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Comparison::Gt => order == Some(Ordering::Greater),
        Comparison::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
    }
}

enum Action {
    Text(String),
    Code(String),
}

/// Splits a template into text and `{...}` actions; braces inside quotes
/// do not count.
fn split_actions(source: &str) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    let mut text = String::new();
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        if c != '{' {
            text.push(c);
            continue;
        }
        if !text.is_empty() {
            actions.push(Action::Text(std::mem::take(&mut text)));
        }
        let mut code = String::new();
        let mut quote: Option<char> = None;
        let mut closed = false;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, '}') => {
                    closed = true;
                    break;
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (Some(_), '\\') => {
                    code.push(c);
                    if let Some(escaped) = chars.next() {
                        code.push(escaped);
                    }
                    continue;
                }
                _ => {}
            }
            code.push(c);
        }
        if !closed {
            return Err("unclosed action".to_owned());
        }
        actions.push(Action::Code(code));
    }
    if !text.is_empty() {
        actions.push(Action::Text(text));
    }
    Ok(actions)
}

/// `"text"` or `'text'` with `\n`, `\t`, `\r`, `\\` and quote escapes.
fn unquote(code: &str) -> Result<String, String> {
    let mut chars = code.chars();
    let quote = chars.next().ok_or("empty quoted text")?;
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                other => return Err(format!("invalid escape {other:?} in {code}")),
            },
            c if c == quote => {
                return if chars.as_str().is_empty() {
                    Ok(out)
                } else {
                    Err(format!("unexpected text after the quoted text in {code}"))
                }
            }
            c => out.push(c),
        }
    }
    Err(format!("unterminated quoted text {code}"))
}

/// Parses a path: `$...`, `@...`, `.a.b`, `..a`, `['a']`, `[0]`, `[?(...)]`.
fn parse_path(text: &str) -> Result<Path, String> {
    let mut rest = text;
    let from_root = if let Some(after) = rest.strip_prefix('$') {
        rest = after;
        true
    } else {
        if let Some(after) = rest.strip_prefix('@') {
            rest = after;
        }
        false
    };
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("..") {
            let (name, after) = field_name(after);
            steps.push(Step::Descend((name != "*").then_some(name)));
            rest = after;
        } else if let Some(after) = rest.strip_prefix('.') {
            let (name, after) = field_name(after);
            if name.is_empty() {
                if after.is_empty() {
                    break; // `{.}` is the current value, as `{@}`.
                }
                if !after.starts_with('[') {
                    return Err(format!("invalid field name in {text}"));
                }
            } else if name == "*" {
                steps.push(Step::Wildcard);
            } else {
                steps.push(Step::Fields(vec![name]));
            }
            rest = after;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = closing_bracket(after).ok_or_else(|| format!("unterminated [ in {text}"))?;
            steps.push(parse_bracket(after[..end].trim(), text)?);
            rest = &after[end + 1..];
        } else {
            return Err(format!("unrecognized character in action: {rest}"));
        }
    }
    Ok(Path { from_root, steps })
}

/// A field name after `.`: up to the next unescaped `.` or `[`; `\.` is a dot.
fn field_name(text: &str) -> (String, &str) {
    let mut name = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    name.push(escaped);
                }
            }
            '.' | '[' => return (name, &text[at..]),
            c => name.push(c),
        }
    }
    (name, "")
}

/// Where the `]` closing a bracket is, past quotes and nested brackets.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ']') if depth == 0 => return Some(at),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str, text: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(filter) = inner.strip_prefix('?') {
        let body = filter
            .trim()
            .strip_prefix('(')
            .and_then(|f| f.strip_suffix(')'))
            .ok_or_else(|| format!("invalid filter in {text}"))?;
        return parse_filter(body.trim()).map(Step::Filter);
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        let names = split_top_level(inner, ',')
            .into_iter()
            .map(|name| unquote(name.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Step::Fields(names));
    }
    if inner.contains(':') {
        let parts: Vec<&str> = inner.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("invalid slice in {text}"));
        }
        let bound = |part: Option<&&str>| -> Result<Option<i64>, String> {
            match part.map(|p| p.trim()) {
                None | Some("") => Ok(None),
                Some(number) => number
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("invalid array index {number} in {text}")),
            }
        };
        return Ok(Step::Slice(
            bound(parts.first())?,
            bound(parts.get(1))?,
            bound(parts.get(2))?,
        ));
    }
    inner
        .split(',')
        .map(|index| {
            index
                .trim()
                .parse()
                .map_err(|_| format!("invalid array index {} in {text}", index.trim()))
        })
        .collect::<Result<Vec<i64>, _>>()
        .map(Step::Indices)
}

/// `text` split at `separator` outside quotes.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c == separator => {
                parts.push(&text[start..at]);
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_filter(body: &str) -> Result<Filter, String> {
    const OPERATORS: [(&str, Comparison); 6] = [
        ("==", Comparison::Eq),
        ("!=", Comparison::Ne),
        ("<=", Comparison::Le),
        (">=", Comparison::Ge),
        ("<", Comparison::Lt),
        (">", Comparison::Gt),
    ];
    for (symbol, comparison) in OPERATORS {
        if let Some(at) = find_outside_quotes(body, symbol) {
            let left = parse_operand(body[..at].trim())?;
            let right = parse_operand(body[at + symbol.len()..].trim())?;
            return Ok(Filter {
                left,
                compare: Some((comparison, right)),
            });
        }
    }
    Ok(Filter {
        left: parse_operand(body)?,
        compare: None,
    })
}

fn find_outside_quotes(text: &str, symbol: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, _) if text[at..].starts_with(symbol) => return Some(at),
            _ => {}
        }
    }
    None
}

fn parse_operand(text: &str) -> Result<Operand, String> {
    if text.starts_with('@') || text.starts_with('$') {
        return parse_path(text).map(Operand::Path);
    }
    if text.starts_with('"') || text.starts_with('\'') {
        return unquote(text).map(|s| Operand::Literal(Value::String(s)));
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|value| matches!(value, Value::Number(_) | Value::Bool(_) | Value::Null))
        .map(Operand::Literal)
        .ok_or_else(|| format!("unrecognized filter operand {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({
            "kind": "LockList",
            "items": [
                { "key": "a", "holder": "pod-1", "state": "held", "ttlSeconds": 60,
                  "labels": { "team": "data", "app.kubernetes.io/name": "beat" },
                  "fencingToken": 12 },
                { "key": "b", "holder": null, "state": "free", "ttlSeconds": 5,
                  "labels": {}, "fencingToken": null },
                { "key": "c", "holder": "pod-2", "state": "expired", "ttlSeconds": 30,
                  "labels": { "team": "web" }, "fencingToken": null },
            ],
        })
    }

    fn render(template: &str) -> String {
        Template::parse(template)
            .expect("parses")
            .render(&list())
            .expect("renders")
    }

    #[test]
    fn fields_and_wildcards() {
        assert_eq!(render("{.kind}"), "LockList");
        assert_eq!(render("kind is {.kind}!"), "kind is LockList!");
        assert_eq!(render("{.items[*].key}"), "a b c");
        assert_eq!(render("{.items[*].holder}"), "pod-1 pod-2");
        assert_eq!(render("{.items[*].ttlSeconds}"), "60 5 30");
        assert_eq!(render("{$.items[0].key}"), "a");
        assert_eq!(render("{.items[0]['key','state']}"), "a held");
        assert_eq!(render("{.items[0].labels.team}"), "data");
        assert_eq!(
            render("{.items[0].labels.app\\.kubernetes\\.io/name}"),
            "beat"
        );
        assert_eq!(
            render("{.items[0].labels['app.kubernetes.io/name']}"),
            "beat"
        );
        assert_eq!(
            render("{.items[0].labels}"),
            r#"{"app.kubernetes.io/name":"beat","team":"data"}"#
        );
        assert_eq!(render("{.items[1].labels}"), "{}");
        assert_eq!(render("{.items[0].labels.*}"), "beat data");
        // Missing fields and nulls print nothing.
        assert_eq!(render("{.items[0].nothere}x{.items[1].holder}"), "x");
        assert_eq!(render("{.nothere.deeper}"), "");
    }

    #[test]
    fn indices_slices_and_unions() {
        assert_eq!(render("{.items[-1].key}"), "c");
        assert_eq!(render("{.items[-1:].key}"), "c");
        assert_eq!(render("{.items[0:2].key}"), "a b");
        assert_eq!(render("{.items[1:].key}"), "b c");
        assert_eq!(render("{.items[::2].key}"), "a c");
        assert_eq!(render("{.items[0,2].key}"), "a c");
        assert_eq!(render("{.items[5:9].key}"), "");
        let error = Template::parse("{.items[5].key}")
            .expect("parses")
            .render(&list())
            .expect_err("out of range");
        assert_eq!(
            error,
            "error executing jsonpath \"{.items[5].key}\": Error executing template: \
             array index out of bounds: index 5, length 3"
        );
    }

    #[test]
    fn recursive_descent_and_filters() {
        assert_eq!(render("{..holder}"), "pod-1 pod-2");
        assert_eq!(render("{..team}"), "data web");
        assert_eq!(render("{.items[?(@.state==\"held\")].key}"), "a");
        assert_eq!(render("{.items[?(@.state!='held')].key}"), "b c");
        assert_eq!(render("{.items[?(@.ttlSeconds>=30)].key}"), "a c");
        assert_eq!(render("{.items[?(@.ttlSeconds<30)].key}"), "b");
        assert_eq!(render("{.items[?(@.fencingToken)].key}"), "a");
        assert_eq!(
            render("{.items[?(@.labels.team==\"web\")].holder}"),
            "pod-2"
        );
    }

    #[test]
    fn ranges_and_quoted_text() {
        assert_eq!(
            render("{range .items[*]}{.key}{\"\\t\"}{.state}{\"\\n\"}{end}"),
            "a\theld\nb\tfree\nc\texpired\n"
        );
        assert_eq!(render("{range .items}[{.key}]{end}"), "[a][b][c]");
        assert_eq!(
            render("{range .items[?(@.holder)]}{.key}={.holder};{end}"),
            "a=pod-1;c=pod-2;"
        );
        // Braces inside quotes, and text outside braces printed as is.
        assert_eq!(render("{\"{}\"}a\\nb"), "{}a\\nb");
    }

    #[test]
    fn parse_errors_like_kubectl() {
        for (template, reason) in [
            ("{.kind", "unclosed action"),
            ("{range .items[*]}{.key}", "range without end"),
            ("{end}", "not in range, nothing to end"),
            ("{.items[x]}", "invalid array index x"),
            ("{.items[0}", "unterminated ["),
            ("{kind}", "unrecognized character in action: kind"),
            ("{\"\\q\"}", "invalid escape"),
        ] {
            let error = Template::parse(template).expect_err(template);
            assert!(
                error.starts_with(&format!("error parsing jsonpath {template}, "))
                    && error.contains(reason),
                "{template}: {error}"
            );
        }
    }
}
