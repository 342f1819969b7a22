//! Routes whose requests are not traced (`FAULTLINE_EXCLUDED_ROUTES`).

use std::fmt;

/// The routes whose requests get no span, no `traceresponse` header and
/// no metric series (health and readiness probes, scrapes): each entry is
/// a route template in the `{param}` form (`/health`, `/users/{id}`,
/// `/files/{*rest}`) or a path prefix ending in `*` (`/internal/*`).
///
/// A request is matched by its path, before any handler runs, the same way
/// on every framework: a template matches a path with as many segments,
/// each `{param}` standing for one non-empty segment (`{*rest}`, last, for
/// all the rest); a prefix matches every path that starts with it.
///
/// ```
/// use faultline_engine::config::ExcludedRoutes;
///
/// let routes = ExcludedRoutes::parse(["/health", "/users/{id}", "/internal/*"])?;
/// assert!(routes.matches("/health"));
/// assert!(routes.matches("/users/42"));
/// assert!(!routes.matches("/users/42/orders"));
/// assert!(routes.matches("/internal/ready"));
/// assert!(!routes.matches("/healthz"));
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExcludedRoutes {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `/internal/*`: the text before the `*`.
    Prefix(String),
    /// `/health`: a template of literal segments alone, matched by the
    /// whole path at once (what the segment walk would decide, in one
    /// comparison).
    Exact(String),
    /// `/users/{id}`: as written, and its segments after the first `/`.
    Template(String, Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one non-empty segment.
    Param,
    /// `{*name}` (last): the rest of the path.
    Rest,
}

impl ExcludedRoutes {
    /// Parses the entries; an error says which entry is wrong and why. An
    /// empty entry is skipped.
    pub fn parse<I, S>(entries: I) -> Result<ExcludedRoutes, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if !entry.is_empty() {
                out.push(parse_entry(entry).map_err(|why| format!("{entry:?} {why}"))?);
            }
        }
        Ok(ExcludedRoutes { entries: out })
    }

    /// Whether no route is excluded (the default).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request for `path` (without the query) is excluded.
    #[inline]
    pub fn matches(&self, path: &str) -> bool {
        !self.entries.is_empty() && self.entries.iter().any(|e| e.matches(path))
    }

    /// The entries as written (`/users/{id}`, `/internal/*`).
    pub fn to_strings(&self) -> Vec<String> {
        self.entries.iter().map(Entry::to_string).collect()
    }
}

impl fmt::Debug for ExcludedRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_strings()).finish()
    }
}

fn parse_entry(entry: &str) -> Result<Entry, &'static str> {
    if !entry.starts_with('/') {
        return Err("must start with /");
    }
    if entry
        .bytes()
        .any(|b| !b.is_ascii_graphic() || matches!(b, b'?' | b'#' | b','))
    {
        return Err("holds white space, a query or a fragment");
    }
    if let Some(prefix) = entry.strip_suffix('*')
        && !prefix.ends_with("{")
    {
        if prefix.contains(['*', '{', '}']) {
            return Err("is a prefix: only a final * is allowed, no {param}");
        }
        return Ok(Entry::Prefix(prefix.to_owned()));
    }
    let segments: Vec<&str> = entry[1..].split('/').collect();
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .map(|(i, segment)| match segment.strip_prefix('{') {
            None if segment.contains(['{', '}', '*']) => {
                Err("has a {param} that is not a whole segment, or a * before the end")
            }
            None => Ok(Segment::Literal((*segment).to_owned())),
            Some(param) => match param.strip_suffix('}') {
                Some(name) if name.starts_with('*') && i == last => Ok(Segment::Rest),
                Some(name) if !name.is_empty() && !name.contains(['{', '}', '*']) => {
                    Ok(Segment::Param)
                }
                _ => Err("has a malformed {param} ({*rest} only last)"),
            },
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|segments| {
            if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
                Entry::Exact(entry.to_owned())
            } else {
                Entry::Template(entry.to_owned(), segments)
            }
        })
}

impl Entry {
    fn matches(&self, path: &str) -> bool {
        let template = match self {
            Entry::Prefix(prefix) => return path.starts_with(prefix.as_str()),
            Entry::Exact(text) => return path == text,
            Entry::Template(_, template) => template,
        };
        let Some(mut rest) = path.strip_prefix('/') else {
            return false;
        };
        for (i, segment) in template.iter().enumerate() {
            if *segment == Segment::Rest {
                return true;
            }
            let (head, tail) = match rest.split_once('/') {
                Some((head, tail)) => (head, Some(tail)),
                None => (rest, None),
            };
            let fits = match segment {
                Segment::Literal(text) => head == text,
                _ => !head.is_empty(),
            };
            let last = i + 1 == template.len();
            match (fits, tail) {
                (false, _) => return false,
                (true, None) => return last,
                (true, Some(_)) if last => return false,
                (true, Some(tail)) => rest = tail,
            }
        }
        false
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Prefix(prefix) => write!(f, "{prefix}*"),
            Entry::Exact(text) | Entry::Template(text, _) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_by_segment_and_prefixes_by_text() {
        let r = ExcludedRoutes::parse([
            "/health",
            " /users/{id}/orders ",
            "/files/{*path}",
            "/internal/*",
            "/",
        ])
        .unwrap();
        for yes in [
            "/health",
            "/users/7/orders",
            "/files/a",
            "/files/a/b/c",
            "/files/",
            "/internal/",
            "/internal/x/y",
            "/",
        ] {
            assert!(r.matches(yes), "{yes}");
        }
        for no in [
            "/healthz",
            "/health/",
            "/users//orders",
            "/users/7",
            "/users/7/orders/1",
            "/files",
            "/internal",
            "",
            "health",
        ] {
            assert!(!r.matches(no), "{no}");
        }
        assert!(!ExcludedRoutes::default().matches("/health"));
        assert!(ExcludedRoutes::parse(["", " "]).unwrap().is_empty());
    }

    #[test]
    fn a_literal_template_decides_as_the_segment_walk_would() {
        let templates = ["/", "/health", "/a/b", "/a//b", "/a/b/"];
        let paths = [
            "", "/", "//", "/health", "/health/", "/healthz", "/a/b", "/a/b/", "/a//b", "/a/b/c",
            "a/b", "/A/b",
        ];
        for template in templates {
            let exact = parse_entry(template).unwrap();
            assert!(matches!(exact, Entry::Exact(_)), "{template}");
            let segments = template[1..]
                .split('/')
                .map(|s| Segment::Literal(s.to_owned()))
                .collect();
            let walked = Entry::Template(template.to_owned(), segments);
            for path in paths {
                assert_eq!(
                    exact.matches(path),
                    walked.matches(path),
                    "{template} against {path}"
                );
            }
        }
        assert!(matches!(
            parse_entry("/u/{id}").unwrap(),
            Entry::Template(..)
        ));
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        for bad in [
            "health",
            "/users/{id",
            "/users/{}",
            "/users/x{id}",
            "/a/*/b",
            "/{*rest}/more",
            "/a b",
            "/a?x=1",
            "/{id}/*",
        ] {
            let error = ExcludedRoutes::parse([bad]).unwrap_err();
            assert!(error.starts_with(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn entries_are_written_back_as_given() {
        let r = ExcludedRoutes::parse(["/health", "/internal/*", "/u/{id}", "/f/{*p}"]).unwrap();
        assert_eq!(
            r.to_strings(),
            ["/health", "/internal/*", "/u/{id}", "/f/{*p}"]
        );
        assert_eq!(
            ExcludedRoutes::parse(r.to_strings()).unwrap(),
            r,
            "parsed again, the same routes"
        );
    }
}
