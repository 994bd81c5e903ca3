//! The index's simple page for a project (PEP 503 HTML or PEP 691 JSON): which files it
//! lists, with their sha256.

use super::{connect_error, read_capped, server_message, Credentials, IndexError};
use reqwest::Url;
use std::collections::BTreeMap;

/// The files the project page lists: file name → sha256 (when the page gives one). An
/// absent page (404) lists nothing.
pub(super) async fn listed(
    client: &reqwest::Client,
    page: &Url,
    credentials: Option<&Credentials>,
) -> Result<BTreeMap<String, Option<String>>, IndexError> {
    let mut request = client.get(page.clone()).header(
        reqwest::header::ACCEPT,
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1",
    );
    if let Some(credentials) = credentials {
        request = request.header(reqwest::header::AUTHORIZATION, credentials.header());
    }
    let response = request.send().await.map_err(|e| connect_error(page, e))?;
    let status = response.status();
    // Absent; or sent elsewhere, as an index that falls back to another one does for
    // projects it does not hold (what is elsewhere is not on this index).
    if status == reqwest::StatusCode::NOT_FOUND || status.is_redirection() {
        return Ok(BTreeMap::new());
    }
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = read_capped(response, 32 << 20)
        .await
        .map_err(|e| connect_error(page, e))?;
    if !status.is_success() {
        return Err(IndexError::Refused {
            url: page.to_string(),
            file: "its simple page".into(),
            status: status.as_u16(),
            message: server_message(&body, credentials),
        });
    }
    Ok(if json {
        parse_simple_json(&body)
    } else {
        parse_simple_html(&body)
    })
}

/// PEP 691: `{"files": [{"filename": …, "hashes": {"sha256": …}}]}`.
fn parse_simple_json(body: &str) -> BTreeMap<String, Option<String>> {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    value["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f["filename"].as_str()?.to_string();
            let sha256 = f["hashes"]["sha256"].as_str().map(str::to_ascii_lowercase);
            Some((name, sha256))
        })
        .collect()
}

/// PEP 503: anchors whose text is the file name and whose href ends `#sha256=HEX`.
fn parse_simple_html(body: &str) -> BTreeMap<String, Option<String>> {
    let mut files = BTreeMap::new();
    let lower = body.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a ").map(|i| i + at) {
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| i + tag_end) else {
            break;
        };
        let tag = &body[start..tag_end];
        let text = unescape(body[tag_end + 1..close].trim());
        let href = attribute(tag, "href")
            .map(|h| unescape(&h))
            .unwrap_or_default();
        let sha256 = href
            .split_once('#')
            .and_then(|(_, fragment)| fragment.strip_prefix("sha256="))
            .map(str::to_ascii_lowercase);
        let name = if text.is_empty() {
            href.split('#')
                .next()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        } else {
            text
        };
        if !name.is_empty() {
            files.insert(name, sha256);
        }
        at = close + 4;
    }
    files
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let at = lower.find(&format!("{name}="))? + name.len() + 1;
    let rest = &tag[at..];
    let quote = rest.chars().next()?;
    if quote == '"' || quote == '\'' {
        rest[1..].split(quote).next().map(String::from)
    } else {
        rest.split([' ', '>']).next().map(String::from)
    }
}

pub(super) fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simple_page_is_read_as_html_or_json() {
        let html = r#"<html><body><h1>Links for sampleapp</h1>
<a href="/packages/sampleapp-1.2.3.tar.gz#sha256=ABCDEF">sampleapp-1.2.3.tar.gz</a><br>
<a href='../../packages/sampleapp-1.2.3-py3-none-any.whl'>sampleapp-1.2.3-py3-none-any.whl</a>
</body></html>"#;
        let files = parse_simple_html(html);
        assert_eq!(
            files.get("sampleapp-1.2.3.tar.gz"),
            Some(&Some("abcdef".to_string()))
        );
        assert_eq!(files.get("sampleapp-1.2.3-py3-none-any.whl"), Some(&None));
        let json = r#"{"meta":{"api-version":"1.0"},"name":"sampleapp","files":[{"filename":"a-1.tar.gz","url":"x","hashes":{"sha256":"00ff"}}]}"#;
        assert_eq!(
            parse_simple_json(json).get("a-1.tar.gz"),
            Some(&Some("00ff".to_string()))
        );
    }
}
