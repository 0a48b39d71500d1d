//! Output formatting: pure functions from locks to text, as kubectl prints
//! things (tables, `describe`, durations, JSON and YAML views).

use std::collections::BTreeMap;
use std::time::Duration;

use celers_kube_lease::LockInfo;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Placeholder for a missing value, as kubectl prints it.
pub const NONE: &str = "<none>";

/// What `describe` says when a lock has no fencing token.
pub const NO_FENCING_TOKEN: &str = "<none> (plain try_acquire tenures have none; \
     a guard records its token at its first renewal)";

/// One lock as the plugin shows it: the library's `LockInfo`, the namespace
/// it was found in, and what the plugin reads of its Lease itself (its
/// creation time and labels, which `LockInfo` does not carry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The namespace of its Lease.
    pub namespace: String,
    /// The lock, as the library sees it.
    pub info: LockInfo,
    /// Its Lease's metadata beyond `LockInfo`.
    pub meta: LeaseMeta,
}

/// What `kubectl get` shows of a Lease that `LockInfo` does not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseMeta {
    /// `metadata.creationTimestamp`, for the AGE column.
    pub created: Option<DateTime<Utc>>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

impl Lock {
    /// `held`, `expired` (a holder whose time ran out) or `free` (no holder).
    pub fn state(&self) -> State {
        match (&self.info.holder, self.info.expires_in) {
            (_, Some(_)) => State::Held,
            (Some(_), None) => State::Expired,
            (None, None) => State::Free,
        }
    }

    /// Whether a sweep with `grace` would delete it when the API server's
    /// clock reads at least `server_now`: it has no holder (or lacks the
    /// times to tell), or it expired more than `grace` before `server_now`.
    pub fn is_sweepable(&self, server_now: DateTime<Utc>, grace: Duration) -> bool {
        if self.info.expires_in.is_some() {
            return false;
        }
        let Some(expires_at) = self.info.expires_at else {
            return true;
        };
        chrono::TimeDelta::from_std(grace)
            .ok()
            .and_then(|grace| expires_at.checked_add_signed(grace))
            .is_some_and(|collectable| server_now >= collectable)
    }

    /// As `-o name` prints it: kubectl's `lease.coordination.k8s.io/NAME`.
    pub fn name(&self) -> String {
        format!("lease.coordination.k8s.io/{}", self.info.lease)
    }
}

/// The state of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A live holder.
    Held,
    /// A holder whose time ran out; free to take or sweep.
    Expired,
    /// No holder.
    Free,
}

impl State {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Expired => "expired",
            Self::Free => "free",
        }
    }
}

/// A duration as kubectl prints ages (apimachinery's `HumanDuration`):
/// about 2 to 3 significant figures: `45s`, `3m20s`, `15m`, `2h5m`, `10h`,
/// `3d4h`, `30d`, `2y10d`, `9y`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// Parses a duration as kubectl's flags take them: a sequence of numbers
/// with units `ms`, `s`, `m`, `h` or `d` (`90s`, `1h30m`, `0`), or a bare
/// number of seconds.
///
/// # Errors
///
/// A message saying what is wrong with `text`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        |why: &str| format!("invalid duration {text:?}: {why} (examples: 60s, 5m, 1h30m)");
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_secs: u64 = match &rest[..unit_len] {
            "ms" => 0,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(invalid("missing unit")),
            _ => return Err(invalid("unknown unit")),
        };
        let part = if unit_secs == 0 {
            Duration::from_millis(number)
        } else {
            number
                .checked_mul(unit_secs)
                .map(Duration::from_secs)
                .ok_or_else(|| invalid("too large"))?
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| invalid("too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so that a
/// key cannot break a table apart or send escape sequences to the terminal,
/// as kubectl escapes what it prints.
pub fn escape_terminal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Column widths of a table as kubectl prints one: each column's widest
/// cell plus 3 spaces, at least 6.
pub fn widths(lines: &[Vec<String>]) -> Vec<usize> {
    const MIN_WIDTH: usize = 6;
    const PADDING: usize = 3;
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    (0..columns)
        .map(|column| {
            let widest = lines
                .iter()
                .filter_map(|line| line.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect()
}

/// One line of a table: each cell but the last padded to its column's width
/// (or 3 spaces past the cell where it is wider), no trailing spaces.
pub fn table_line(cells: &[String], widths: &[usize]) -> String {
    let mut text = String::new();
    for (column, cell) in cells.iter().enumerate() {
        text.push_str(cell);
        if column + 1 < cells.len() {
            let width = widths.get(column).copied().unwrap_or(0);
            let length = cell.chars().count();
            let pad = width.saturating_sub(length).max(3);
            text.extend(std::iter::repeat_n(' ', pad));
        }
    }
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    text.push('\n');
    text
}

/// Cells as printed: control characters escaped.
pub fn escaped(cells: &[String]) -> Vec<String> {
    cells.iter().map(|cell| escape_terminal(cell)).collect()
}

/// A table as kubectl prints one: a header in capitals (none when `header`
/// is `None`, as with `--no-headers`), then rows, each column but the last
/// padded to its widest cell plus 3 spaces (and at least 6 wide), so
/// columns are separated by at least 3 spaces.
pub fn table(header: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    if let Some(header) = header {
        lines.push(header.iter().map(|h| h.to_uppercase()).collect());
    }
    lines.extend(rows.iter().map(|row| escaped(row)));
    let widths = widths(&lines);
    lines.iter().map(|line| table_line(line, &widths)).collect()
}

/// RFC 3339 in UTC to the second, as kubectl prints timestamps in tables.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 in UTC to the microsecond, as a Lease stores its times.
pub fn micro_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The AGE cell as kubectl prints it (`translateTimestampSince`): the
/// human duration since `created` by `now`, `<unknown>` without a time,
/// `<invalid>` for a time more than a second in the future, `0s` for one
/// less than that.
pub fn age_cell(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(created) = created else {
        return "<unknown>".to_owned();
    };
    let age = now - created;
    if age.num_seconds() < -1 {
        return "<invalid>".to_owned();
    }
    human_duration(age.to_std().unwrap_or(Duration::ZERO))
}

/// The EXPIRES IN cell: the time left, `expired` for a holder whose time ran
/// out, `<none>` without a holder.
pub fn expires_in_cell(lock: &Lock) -> String {
    match lock.state() {
        State::Held => lock.info.expires_in.map(human_duration).unwrap_or_default(),
        State::Expired => "expired".to_owned(),
        State::Free => NONE.to_owned(),
    }
}

fn or_none<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map(show).unwrap_or_else(|| NONE.to_owned())
}

fn ttl_cell(ttl_secs: Option<i32>) -> String {
    or_none(ttl_secs, |secs| {
        human_duration(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    })
}

/// Which columns the `locks` table has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
    /// `-o wide`: FENCING TOKEN, RENEWED and RESOURCE VERSION after AGE.
    pub wide: bool,
}

/// The header of the `locks` table.
pub fn locks_header(columns: Columns) -> Vec<&'static str> {
    let mut header = Vec::new();
    if columns.all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "KEY",
        "HOLDER",
        "EXPIRES IN",
        "TTL",
        "HELD FOR",
        "TRANSITIONS",
        "LEASE",
        "AGE",
    ]);
    if columns.wide {
        header.extend(["FENCING TOKEN", "RENEWED", "RESOURCE VERSION"]);
    }
    header
}

/// One row of the `locks` table; AGE counted to `now`.
pub fn lock_row(lock: &Lock, columns: Columns, now: DateTime<Utc>) -> Vec<String> {
    let info = &lock.info;
    let mut row = Vec::new();
    if columns.all_namespaces {
        row.push(lock.namespace.clone());
    }
    row.extend([
        info.key.clone(),
        or_none(info.holder.clone(), |holder| holder),
        expires_in_cell(lock),
        ttl_cell(info.ttl_secs),
        or_none(info.held_for, human_duration),
        info.transitions.to_string(),
        info.lease.clone(),
        age_cell(lock.meta.created, now),
    ]);
    if columns.wide {
        row.extend([
            or_none(info.fencing_token, |token| token.to_string()),
            or_none(info.renewed_at, timestamp),
            info.resource_version.clone(),
        ]);
    }
    row
}

/// The `locks` table, with its header unless `headers` is false
/// (`--no-headers`). Rows come in the order given.
pub fn locks_table(locks: &[Lock], columns: Columns, headers: bool, now: DateTime<Utc>) -> String {
    let header = locks_header(columns);
    let rows: Vec<Vec<String>> = locks
        .iter()
        .map(|lock| lock_row(lock, columns, now))
        .collect();
    table(headers.then_some(header.as_slice()), &rows)
}

/// Sorts locks by namespace, then key.
pub fn sort_locks(locks: &mut [Lock]) {
    locks.sort_by(|a, b| (&a.namespace, &a.info.key).cmp(&(&b.namespace, &b.info.key)));
}

/// `Label:   value` lines aligned as kubectl describe aligns them (the
/// values start 2 spaces after the longest label).
pub fn fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::new();
    for (label, value) in fields {
        let label = format!("{label}:");
        let pad = width.saturating_sub(label.chars().count());
        out.push_str(&label);
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str(&escape_terminal(value));
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

/// Labels as `kubectl get --show-labels` prints them: `k=v,k2=v2`, or
/// `<none>`.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return NONE.to_owned();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything about one lock, in kubectl describe's style.
pub fn describe_text(lock: &Lock) -> String {
    let info = &lock.info;
    fields(&[
        ("Key", info.key.clone()),
        ("Lease", info.lease.clone()),
        ("Namespace", lock.namespace.clone()),
        ("Labels", labels_text(&lock.meta.labels)),
        ("Created", or_none(lock.meta.created, timestamp)),
        ("Holder", or_none(info.holder.clone(), |holder| holder)),
        ("State", lock.state().as_str().to_owned()),
        ("Expires In", expires_in_cell(lock)),
        ("Expires At", or_none(info.expires_at, micro_timestamp)),
        ("Acquired", or_none(info.acquired_at, micro_timestamp)),
        ("Renewed", or_none(info.renewed_at, micro_timestamp)),
        ("TTL", ttl_cell(info.ttl_secs)),
        ("Held For", or_none(info.held_for, human_duration)),
        ("Transitions", info.transitions.to_string()),
        (
            "Fencing Token",
            info.fencing_token
                .map_or_else(|| NO_FENCING_TOKEN.to_owned(), |token| token.to_string()),
        ),
        ("Resource Version", info.resource_version.clone()),
    ])
}

/// What `release --force` says before it deletes.
pub fn force_release_notice(lock: &Lock) -> String {
    let holder = lock.info.holder.as_deref().unwrap_or(NONE);
    format!(
        "deleting Lease {}/{} of lock {:?}: holder {holder}, expires in {}",
        lock.namespace,
        lock.info.lease,
        lock.info.key,
        expires_in_cell(lock)
    )
}

/// `N Leases deleted`, singular for one.
pub fn leases_deleted(count: u64, dry_run: bool) -> String {
    let noun = if count == 1 { "Lease" } else { "Leases" };
    let suffix = if dry_run { " (dry run)" } else { "" };
    format!("{count} {noun} deleted{suffix}")
}

/// What kubectl prints (on stderr) when a listing is empty.
pub fn no_locks_found(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("No locks found in {namespace} namespace."),
        None => "No locks found".to_owned(),
    }
}

/// One lock for `-o json`, `-o yaml` and `-o jsonpath`: the library's
/// `LockInfo` in the shapes of the Kubernetes API (camelCase, times as
/// strings, durations in whole seconds), borrowed, not copied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockView<'a> {
    /// The namespace of its Lease.
    pub namespace: &'a str,
    /// The key.
    pub key: &'a str,
    /// The Lease name.
    pub lease: &'a str,
    /// `held`, `expired` or `free`.
    pub state: State,
    /// `holderIdentity`.
    pub holder: Option<&'a str>,
    /// Whole seconds it stays held at least, when held.
    pub expires_in_seconds: Option<u64>,
    /// When it expires by the API server's clock.
    pub expires_at: Option<String>,
    /// `acquireTime`.
    pub acquired_at: Option<String>,
    /// `renewTime`.
    pub renewed_at: Option<String>,
    /// `leaseDurationSeconds`.
    pub ttl_seconds: Option<i32>,
    /// Whole seconds of the current tenure, when held.
    pub held_for_seconds: Option<u64>,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// The guard's fencing token, once recorded.
    pub fencing_token: Option<u64>,
    /// The Lease's resourceVersion.
    pub resource_version: &'a str,
    /// The Lease's creationTimestamp.
    pub created_at: Option<String>,
    /// The Lease's labels.
    pub labels: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Lock> for LockView<'a> {
    fn from(lock: &'a Lock) -> Self {
        let info = &lock.info;
        Self {
            namespace: &lock.namespace,
            key: &info.key,
            lease: &info.lease,
            state: lock.state(),
            holder: info.holder.as_deref(),
            expires_in_seconds: info.expires_in.map(|d| d.as_secs()),
            expires_at: info.expires_at.map(micro_timestamp),
            acquired_at: info.acquired_at.map(micro_timestamp),
            renewed_at: info.renewed_at.map(micro_timestamp),
            ttl_seconds: info.ttl_secs,
            held_for_seconds: info.held_for.map(|d| d.as_secs()),
            transitions: info.transitions,
            fencing_token: info.fencing_token.map(celers_kube_lease::FencingToken::get),
            resource_version: &info.resource_version,
            created_at: lock.meta.created.map(timestamp),
            labels: &lock.meta.labels,
        }
    }
}

/// Several locks for `-o json`, `-o yaml` and `-o jsonpath`, like a
/// Kubernetes list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LockList<'a> {
    /// Always `LockList`.
    pub kind: &'static str,
    /// The locks.
    pub items: Vec<LockView<'a>>,
}

impl<'a> LockList<'a> {
    /// The list of `locks`, in their order.
    pub fn new(locks: &'a [Lock]) -> Self {
        Self {
            kind: "LockList",
            items: locks.iter().map(LockView::from).collect(),
        }
    }
}

/// A watch event for `--output-watch-events` with `-o json|yaml`, as
/// kubectl prints one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WatchEvent<'a> {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The lock (as last seen, for `DELETED`).
    pub object: LockView<'a>,
}

/// A machine-readable output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `value` as JSON (pretty, with a final newline) or YAML.
///
/// # Errors
///
/// When serialization fails (it does not for the views of this module).
pub fn serialized(value: &impl Serialize, format: Format) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|text| text + "\n")
            .map_err(|e| format!("cannot print JSON: {e}")),
        Format::Yaml => serde_yaml::to_string(value).map_err(|e| format!("cannot print YAML: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    use crate::fixtures::{at, held_expired_free};
    use celers_kube_lease::lease_name;

    fn held() -> Lock {
        held_expired_free().0
    }

    fn expired() -> Lock {
        held_expired_free().1
    }

    fn free() -> Lock {
        held_expired_free().2
    }

    /// The fixtures' API server clock, as a local clock reading for AGE.
    fn now() -> DateTime<Utc> {
        at("2026-11-26T18:03:15Z")
    }

    #[test]
    fn durations_like_kubectl() {
        let cases = [
            (0, "0s"),
            (1, "1s"),
            (45, "45s"),
            (59, "59s"),
            (60, "60s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (659, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (2 * 3600 + 5 * 60, "125m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60 + 59, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (7 * 86_400 + 23 * 3600, "7d23h"),
            (8 * 86_400, "8d"),
            (729 * 86_400, "729d"),
            (730 * 86_400, "2y"),
            (740 * 86_400, "2y10d"),
            (8 * 365 * 86_400 - 1, "7y364d"),
            (8 * 365 * 86_400, "8y"),
            (100 * 365 * 86_400, "100y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(secs(seconds)), expected, "{seconds} s");
        }
        // Fractions are cut off, like Go's int(d.Seconds()).
        assert_eq!(human_duration(Duration::from_millis(45_999)), "45s");
        assert_eq!(human_duration(Duration::from_millis(999)), "0s");
        assert_eq!(
            human_duration(Duration::MAX),
            format!("{}y", u64::MAX / 86_400 / 365)
        );
    }

    #[test]
    fn the_brief_examples() {
        assert_eq!(human_duration(secs(45)), "45s");
        assert_eq!(human_duration(secs(200)), "3m20s");
        assert_eq!(human_duration(secs(2 * 3600 + 5 * 60)), "125m");
        assert_eq!(human_duration(secs(4 * 3600 + 5 * 60)), "4h5m");
        assert_eq!(human_duration(secs(76 * 3600)), "3d4h");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s"), Ok(secs(60)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(secs(90)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(secs(172_800)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration(" 10s "), Ok(secs(10)));
        for bad in [
            "",
            "s",
            "10x",
            "1.5s",
            "-5s",
            "5 s",
            "h1",
            "99999999999999999999999s",
        ] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains("invalid duration"), "{error}");
        }
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("10y")
            .expect_err("unit")
            .contains("unknown unit"));
        assert!(parse_duration("10m5")
            .expect_err("unit")
            .contains("missing unit"));
        assert!(parse_duration("999999999999999999d")
            .expect_err("big")
            .contains("too large"));
    }

    #[test]
    fn tables_align_like_kubectl() {
        let rows = vec![
            vec!["a".to_owned(), "bb".to_owned(), "c".to_owned()],
            vec!["longer-name".to_owned(), "x".to_owned(), "last".to_owned()],
        ];
        assert_eq!(
            table(Some(&["name", "ab", "last column"]), &rows),
            "NAME          AB    LAST COLUMN\n\
             a             bb    c\n\
             longer-name   x     last\n"
        );
        // No rows: the header alone; no trailing spaces anywhere.
        assert_eq!(table(Some(&["KEY", "HOLDER"]), &[]), "KEY   HOLDER\n");
        assert_eq!(table(None, &rows[..1]), "a     bb    c\n");
        let rows = vec![vec!["k".to_owned(), String::new()]];
        assert_eq!(table(Some(&["KEY", "HOLDER"]), &rows), "KEY   HOLDER\nk\n");
        // Control characters are escaped.
        let rows = vec![vec!["a\nb".to_owned(), "\u{1b}[31mred".to_owned()]];
        assert_eq!(
            table(Some(&["KEY", "V"]), &rows),
            "KEY    V\na\\nb   \\u{1b}[31mred\n"
        );
        assert_eq!(fields(&[("Key", "tab\there".into())]), "Key:  tab\\there\n");
        assert_eq!(escape_terminal("plain/ключ"), "plain/ключ");
        // Width counts characters, not bytes.
        let rows = vec![vec!["ключ-ключ".to_owned(), "x".to_owned()]];
        assert_eq!(
            table(Some(&["KEY", "V"]), &rows),
            "KEY         V\nключ-ключ   x\n"
        );
    }

    #[test]
    fn watch_rows_keep_the_columns_of_the_first_table() {
        let lines = vec![
            vec!["KEY".to_owned(), "HOLDER".to_owned(), "AGE".to_owned()],
            vec!["a".to_owned(), "pod-1".to_owned(), "5s".to_owned()],
        ];
        let widths = widths(&lines);
        assert_eq!(widths, [6, 9, 6]);
        assert_eq!(
            table_line(&["b".into(), "pod-2".into(), "1s".into()], &widths),
            "b     pod-2    1s\n"
        );
        // A wider cell pushes its row's later cells, 3 spaces on.
        assert_eq!(
            table_line(&["much-longer".into(), "p".into(), "1s".into()], &widths),
            "much-longer   p        1s\n"
        );
    }

    #[test]
    fn ages_like_kubectl() {
        let now = now();
        assert_eq!(age_cell(Some(at("2026-11-26T18:03:10Z")), now), "5s");
        assert_eq!(age_cell(Some(at("2026-11-26T16:00:00Z")), now), "123m");
        assert_eq!(age_cell(Some(at("2026-11-23T15:03:15Z")), now), "3d3h");
        // A creation up to a second ahead of the local clock is "0s",
        // further is invalid, as kubectl's HumanDuration has it.
        assert_eq!(age_cell(Some(at("2026-11-26T18:03:16Z")), now), "0s");
        assert_eq!(age_cell(Some(at("2026-11-26T18:03:17Z")), now), "<invalid>");
        assert_eq!(age_cell(None, now), "<unknown>");
    }

    #[test]
    fn locks_table_plain() {
        let mut locks = vec![held(), expired()];
        sort_locks(&mut locks);
        let (b, nightly) = (lease_name("tasks/b"), lease_name("tasks/nightly"));
        assert_eq!((b.len(), nightly.len()), (24, 30));
        assert_eq!(
            locks_table(&locks, Columns::default(), true, now()),
            format!(
                "KEY             HOLDER                 EXPIRES IN   TTL   HELD FOR   TRANSITIONS   {:<33}AGE\n\
                 tasks/b         pod-2                  expired      1s    <none>     0             {b:<33}15s\n\
                 tasks/nightly   scheduler-7d9f-abcde   44s          60s   3m14s      3             {nightly:<33}123m\n",
                "LEASE"
            )
        );
        // --no-headers: the widths come from the rows alone, as kubectl's.
        assert_eq!(
            locks_table(&locks, Columns::default(), false, now()),
            format!(
                "tasks/b         pod-2                  expired   1s    <none>   0     {b:<33}15s\n\
                 tasks/nightly   scheduler-7d9f-abcde   44s       60s   3m14s    3     {nightly:<33}123m\n"
            )
        );
    }

    #[test]
    fn locks_table_all_namespaces_and_wide() {
        let mut locks = vec![free(), held(), expired()];
        sort_locks(&mut locks);
        let keys: Vec<(&str, &str)> = locks
            .iter()
            .map(|l| (l.namespace.as_str(), l.info.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("celers-beat", "tasks/b"),
                ("celers-beat", "tasks/nightly"),
                ("other", "k")
            ]
        );
        let columns = Columns {
            all_namespaces: true,
            wide: true,
        };
        let table = locks_table(&locks, columns, true, now());
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|line| {
                line.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            rows[0],
            [
                "NAMESPACE",
                "KEY",
                "HOLDER",
                "EXPIRES IN",
                "TTL",
                "HELD FOR",
                "TRANSITIONS",
                "LEASE",
                "AGE",
                "FENCING TOKEN",
                "RENEWED",
                "RESOURCE VERSION"
            ]
        );
        let nightly = lease_name("tasks/nightly");
        assert_eq!(
            rows[2],
            [
                "celers-beat",
                "tasks/nightly",
                "scheduler-7d9f-abcde",
                "44s",
                "60s",
                "3m14s",
                "3",
                nightly.as_str(),
                "123m",
                "1234",
                "2026-11-26T18:03:00Z",
                "1240"
            ]
        );
        let k = lease_name("k");
        assert_eq!(
            rows[3],
            [
                "other",
                "k",
                "<none>",
                "<none>",
                "<none>",
                "<none>",
                "1",
                k.as_str(),
                "6d",
                "<none>",
                "<none>",
                "7"
            ]
        );
        assert_eq!(rows[1][9], "<none>", "no token recorded for tasks/b");
        assert_eq!(
            locks_table(
                &[],
                Columns {
                    all_namespaces: true,
                    wide: false
                },
                true,
                now()
            ),
            "NAMESPACE   KEY   HOLDER   EXPIRES IN   TTL   HELD FOR   TRANSITIONS   LEASE   AGE\n"
        );
        assert_eq!(locks_table(&[], Columns::default(), false, now()), "");
    }

    #[test]
    fn states_and_cells() {
        assert_eq!(held().state(), State::Held);
        assert_eq!(expired().state(), State::Expired);
        assert_eq!(free().state(), State::Free);
        assert_eq!(expires_in_cell(&held()), "44s");
        assert_eq!(expires_in_cell(&expired()), "expired");
        assert_eq!(expires_in_cell(&free()), "<none>");
        assert_eq!(State::Expired.as_str(), "expired");
        assert_eq!(ttl_cell(Some(3600)), "60m");
        assert_eq!(ttl_cell(Some(-1)), "0s");
        assert_eq!(ttl_cell(None), "<none>");
        assert_eq!(
            held().name(),
            format!("lease.coordination.k8s.io/{}", lease_name("tasks/nightly"))
        );
        assert_eq!(labels_text(&held().meta.labels), "team=data");
        assert_eq!(labels_text(&free().meta.labels), "<none>");
    }

    #[test]
    fn sweepable_locks() {
        let expired = expired(); // expired at 18:03:01.5
        let grace = secs(60);
        assert!(!expired.is_sweepable(at("2026-11-26T18:03:30Z"), grace));
        assert!(!expired.is_sweepable(at("2026-11-26T18:04:01Z"), grace));
        assert!(expired.is_sweepable(at("2026-11-26T18:04:01.5Z"), grace));
        assert!(expired.is_sweepable(at("2026-11-26T18:03:02Z"), Duration::ZERO));
        assert!(!held().is_sweepable(at("2030-01-01T00:00:00Z"), Duration::ZERO));
        assert!(free().is_sweepable(at("2000-01-01T00:00:00Z"), grace));
        assert!(!expired.is_sweepable(at("2030-01-01T00:00:00Z"), Duration::MAX));
    }

    #[test]
    fn describe_like_kubectl() {
        assert_eq!(
            describe_text(&held()),
            format!(
                "Key:               tasks/nightly\n\
                 Lease:             {}\n\
                 Namespace:         celers-beat\n\
                 Labels:            team=data\n\
                 Created:           2026-11-26T16:00:00Z\n\
                 Holder:            scheduler-7d9f-abcde\n\
                 State:             held\n\
                 Expires In:        44s\n\
                 Expires At:        2026-11-26T18:04:00.500000Z\n\
                 Acquired:          2026-11-26T18:00:00.250000Z\n\
                 Renewed:           2026-11-26T18:03:00.500000Z\n\
                 TTL:               60s\n\
                 Held For:          3m14s\n\
                 Transitions:       3\n\
                 Fencing Token:     1234\n\
                 Resource Version:  1240\n",
                lease_name("tasks/nightly")
            )
        );
        let text = describe_text(&expired());
        assert!(text.contains("\nState:             expired\n"), "{text}");
        assert!(text.contains("\nExpires In:        expired\n"), "{text}");
        assert!(text.contains("\nHeld For:          <none>\n"), "{text}");
        assert!(text.contains("\nLabels:            <none>\n"), "{text}");
        assert!(
            text.contains(
                "\nFencing Token:     <none> (plain try_acquire tenures have none; \
                 a guard records its token at its first renewal)\n"
            ),
            "{text}"
        );
        let text = describe_text(&free());
        for line in [
            "Holder:            <none>",
            "State:             free",
            "Expires In:        <none>",
            "Expires At:        <none>",
            "Acquired:          <none>",
            "Renewed:           <none>",
            "TTL:               <none>",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in {text}");
        }
    }

    #[test]
    fn fields_align_and_trim() {
        assert_eq!(
            fields(&[
                ("A", "1".into()),
                ("Longer", String::new()),
                ("B", "x".into())
            ]),
            "A:       1\nLonger:\nB:       x\n"
        );
        assert_eq!(fields(&[]), "");
    }

    #[test]
    fn messages() {
        assert_eq!(
            force_release_notice(&held()),
            format!(
                "deleting Lease celers-beat/{} of lock \"tasks/nightly\": \
                 holder scheduler-7d9f-abcde, expires in 44s",
                lease_name("tasks/nightly")
            )
        );
        assert_eq!(
            force_release_notice(&expired()),
            format!(
                "deleting Lease celers-beat/{} of lock \"tasks/b\": \
                 holder pod-2, expires in expired",
                lease_name("tasks/b")
            )
        );
        assert!(force_release_notice(&free()).ends_with("holder <none>, expires in <none>"));
        assert_eq!(leases_deleted(0, false), "0 Leases deleted");
        assert_eq!(leases_deleted(1, false), "1 Lease deleted");
        assert_eq!(leases_deleted(2, true), "2 Leases deleted (dry run)");
        assert_eq!(
            no_locks_found(Some("ns")),
            "No locks found in ns namespace."
        );
        assert_eq!(no_locks_found(None), "No locks found");
    }

    #[test]
    fn json_and_yaml_views() {
        let locks = vec![held(), free()];
        let json = serialized(&LockList::new(&locks), Format::Json).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["kind"], "LockList");
        let first = &value["items"][0];
        assert_eq!(first["namespace"], "celers-beat");
        assert_eq!(first["key"], "tasks/nightly");
        assert_eq!(first["lease"], lease_name("tasks/nightly"));
        assert_eq!(first["state"], "held");
        assert_eq!(first["holder"], "scheduler-7d9f-abcde");
        assert_eq!(first["expiresInSeconds"], 44);
        assert_eq!(first["expiresAt"], "2026-11-26T18:04:00.500000Z");
        assert_eq!(first["acquiredAt"], "2026-11-26T18:00:00.250000Z");
        assert_eq!(first["renewedAt"], "2026-11-26T18:03:00.500000Z");
        assert_eq!(first["ttlSeconds"], 60);
        assert_eq!(first["heldForSeconds"], 194);
        assert_eq!(first["transitions"], 3);
        assert_eq!(first["fencingToken"], 1234);
        assert_eq!(first["resourceVersion"], "1240");
        assert_eq!(first["createdAt"], "2026-11-26T16:00:00Z");
        assert_eq!(first["labels"], serde_json::json!({ "team": "data" }));
        let second = &value["items"][1];
        assert_eq!(second["state"], "free");
        assert!(second["holder"].is_null());
        assert!(second["expiresInSeconds"].is_null());
        assert!(json.ends_with("}\n"));

        let expired = expired();
        let yaml = serialized(&LockView::from(&expired), Format::Yaml).expect("yaml");
        assert!(
            yaml.starts_with("namespace: celers-beat\nkey: tasks/b\n"),
            "{yaml}"
        );
        assert!(yaml.contains("\nstate: expired\n"), "{yaml}");
        assert!(yaml.contains("\nfencingToken: null\n"), "{yaml}");
        assert!(yaml.contains("\nresourceVersion: '99'\n"), "{yaml}");
        let yaml = serialized(&LockList::new(&[]), Format::Yaml).expect("yaml");
        assert_eq!(yaml, "kind: LockList\nitems: []\n");
        let event = WatchEvent {
            kind: "DELETED",
            object: LockView::from(&expired),
        };
        let json = serialized(&event, Format::Json).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["type"], "DELETED");
        assert_eq!(value["object"]["key"], "tasks/b");
    }
}
