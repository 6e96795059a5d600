//! A few W3C WebDriver commands over HTTP, enough to read what the app's window shows.
//! `WebKitWebDriver --target` attaches to the running app (started with
//! `TAURI_WEBVIEW_AUTOMATION=true` and `WEBKIT_INSPECTOR_SERVER`) instead of launching one.

use std::time::Duration;

use serde_json::{json, Value};

use super::session::wait_for;

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct WebDriver {
    agent: ureq::Agent,
    session: String,
}

impl WebDriver {
    /// Opens a session, retrying until the app's webview exists (its inspector server only
    /// listens once a window is open).
    pub fn connect(driver_port: u16, timeout: Duration) -> WebDriver {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{driver_port}");
        let session = wait_for("a WebDriver session on the app's window", timeout, || {
            let reply = request(
                &agent,
                "POST",
                &format!("{base}/session"),
                Some(json!({"capabilities": {}})),
            )?;
            reply["sessionId"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no sessionId in {reply}"))
        });
        WebDriver {
            agent,
            session: format!("{base}/session/{session}"),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        request(
            &self.agent,
            method,
            &format!("{}{path}", self.session),
            body,
        )
    }

    pub fn url(&self) -> Result<String, String> {
        let url = self.call("GET", "/url", None)?;
        url.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("url is {url}"))
    }

    fn element(&self, css: &str) -> Result<String, String> {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        found[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element {css}: {found}"))
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Result<String, String> {
        let element = self.element(css)?;
        let text = self.call("GET", &format!("/element/{element}/text"), None)?;
        text.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("text is {text}"))
    }

    /// An attribute of the first element matching `css`.
    pub fn attribute(&self, css: &str, name: &str) -> Result<String, String> {
        let element = self.element(css)?;
        let value = self.call("GET", &format!("/element/{element}/attribute/{name}"), None)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{name} of {css} is {value}"))
    }

    /// Makes the newest window current: one opened after the session started is not.
    pub fn switch_to_newest_window(&self) -> Result<(), String> {
        let handles = self.call("GET", "/window/handles", None)?;
        let newest = handles
            .as_array()
            .and_then(|all| all.last())
            .and_then(Value::as_str)
            .ok_or_else(|| format!("window handles are {handles}"))?;
        self.call("POST", "/window", Some(json!({ "handle": newest })))
            .map(|_| ())
    }

    pub fn end(self) {
        let _ = self.call("DELETE", "", None);
    }
}

/// One WebDriver request; the `value` of a success, or the error the driver reported.
fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let response = match (method, body) {
        ("POST", body) => agent.post(url).send_json(body.unwrap_or_else(|| json!({}))),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    };
    let mut response = response.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status();
    let reply: Value = response
        .body_mut()
        .read_json()
        .map_err(|e| format!("{method} {url}: status {status}, no JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{method} {url}: status {status}: {}",
            reply["value"]
        ));
    }
    Ok(reply["value"].clone())
}
