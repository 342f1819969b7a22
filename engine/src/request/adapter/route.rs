//! Route patterns of a router's own syntax in the `{param}` form of the
//! span's name and `http.route`, for the adapters whose router writes them
//! otherwise.

use std::borrow::Cow;

/// A route pattern of the brace syntax (actix-router's: `{name}`,
/// `{name:regex}`, a tail `{name}*`) in the `{param}` form of the span's
/// name and `http.route`: `{id:\d+}` is `{id}` (a regex may hold braces of
/// its own), a tail segment `{rest}*` is `{*rest}`. Follows actix-router's
/// own parser. Borrowed when nothing is rewritten.
pub fn braced_route(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains(':') && !pattern.ends_with("}*") {
        return Cow::Borrowed(pattern);
    }
    let (mut out, mut rest) = (String::with_capacity(pattern.len()), pattern);
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        // The brace that closes the parameter (its regex may hold braces).
        let mut depth = 0;
        let close = rest[open..].find(|c| {
            depth += i32::from(c == '{') - i32::from(c == '}');
            depth == 0
        });
        let param = &rest[open + 1..close.map_or(rest.len(), |c| open + c)];
        rest = close.map_or("", |c| &rest[open + c + 1..]);
        out.push('{');
        if close.is_some() && rest == "*" {
            out.push('*');
            rest = "";
        }
        out.push_str(param.split(':').next().unwrap_or_default());
        if close.is_some() {
            out.push('}');
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A route pattern of the colon syntax (poem's: `:name`, `:name<regex>`,
/// `*rest`, an unnamed `<regex>`) in the `{param}` form of the span's name
/// and `http.route`: `/users/:id` is `/users/{id}`, `:id<\d+>` is `{id}`,
/// `*rest` is `{*rest}` (`{*}` without a name), an unnamed `<regex>` is
/// `{_}`. Follows poem's own parser. Borrowed when nothing is rewritten.
pub fn colon_route(pattern: &str) -> Cow<'_, str> {
    const MARKS: [char; 3] = [':', '*', '<'];
    if !pattern.contains(MARKS) {
        // Nothing to rewrite (a route without parameters).
        return Cow::Borrowed(pattern);
    }
    /// What follows the `<regex>` that `text` starts with.
    fn past_regex(text: &str) -> &str {
        text.split_once('>').map_or("", |(_, after)| after)
    }
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut rest = pattern;
    while let Some(at) = rest.find(MARKS) {
        out.push_str(&rest[..at]);
        let (mark, tail) = (rest.as_bytes()[at], &rest[at + 1..]);
        match mark {
            b':' => {
                let end = tail.find(['/', '<', '*']).unwrap_or(tail.len());
                out.push('{');
                out.push_str(&tail[..end]);
                out.push('}');
                rest = &tail[end..];
                if rest.starts_with('<') {
                    rest = past_regex(rest);
                }
            }
            b'*' => {
                out.push_str("{*");
                out.push_str(tail);
                out.push('}');
                return Cow::Owned(out);
            }
            _ => {
                out.push_str("{_}");
                rest = past_regex(tail);
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braced_routes_use_the_param_form() {
        for (pattern, template) in [
            ("/hello", "/hello"),
            ("/users/{id}", "/users/{id}"),
            (r"/users/{id:\d+}", "/users/{id}"),
            (r"/codes/{code:[A-Z]{3}}/x", "/codes/{code}/x"),
            ("/v{version}/files/{path}*", "/v{version}/files/{*path}"),
            (r"/a/{b:.*}", "/a/{b}"),
            ("/broken/{id", "/broken/{id"),
        ] {
            assert_eq!(braced_route(pattern), template, "{pattern}");
        }
        assert!(matches!(braced_route("/users/{id}"), Cow::Borrowed(_)));
    }

    #[test]
    fn colon_routes_use_the_param_form() {
        assert_eq!(colon_route("/hello"), "/hello");
        assert_eq!(colon_route("/users/:id"), "/users/{id}");
        assert_eq!(colon_route("/a/:x/b/:y"), "/a/{x}/b/{y}");
        assert_eq!(colon_route("/n/:num<\\d+>"), "/n/{num}");
        assert_eq!(colon_route("/n/:num<\\d+>/x"), "/n/{num}/x");
        assert_eq!(colon_route("/d/<\\d+>"), "/d/{_}");
        assert_eq!(colon_route("/files/*path"), "/files/{*path}");
        assert_eq!(colon_route("/files/*"), "/files/{*}");
        assert_eq!(colon_route("/"), "/");
        assert_eq!(colon_route(""), "");
        // Unterminated regex: poem rejects it at registration; no panic here.
        assert_eq!(colon_route("/x/:a<\\d+"), "/x/{a}");
    }
}
