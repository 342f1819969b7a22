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
}
