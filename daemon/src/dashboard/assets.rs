//! The dashboard's built web assets, embedded in the binary (rust-embed) so a node needs no
//! Node.js and no files besides `aiprodd`. daemon/build.rs picks the folder: `dashboard/dist`
//! when it was built, else a placeholder page that says how to build it.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "$DASHBOARD_ASSETS_DIR"]
struct Assets;

/// Vite puts a content hash in every file name under `assets/`, so those never change under
/// the same URL and may be cached for good; `index.html` must be revalidated to pick up a new
/// build.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The page may talk only to this daemon: its API, its WebSocket, its videos (or blobs made
/// from them when a token is needed).
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; \
                   img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether the embedded page is the real dashboard (false: the placeholder of a build without
/// Node.js).
pub fn built() -> bool {
    Assets::get("index.html")
        .is_some_and(|f| !String::from_utf8_lossy(&f.data).contains(r#"content="placeholder""#))
}

/// `GET /`: the single-page app.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", REVALIDATE, &headers)
}

/// `GET /assets/{*path}`: scripts, styles, fonts of the app.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), IMMUTABLE, &headers)
}

fn serve(path: &str, cache_control: &'static str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.data))
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn index_is_served_with_an_etag_and_revalidates() {
        let resp = index(HeaderMap::new()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let etag = resp.headers()[header::ETAG].clone();
        assert_eq!(resp.headers()[header::CACHE_CONTROL], REVALIDATE);
        assert!(resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("aiprod"));

        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(index(h).await.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn unknown_assets_are_404_and_paths_cannot_escape() {
        for p in ["nope.js", "../index.html", "../../Cargo.toml"] {
            let resp = asset(Path(p.to_string()), HeaderMap::new()).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{p}");
        }
    }
}
