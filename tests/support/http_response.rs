//! The raw HTTP answers the test servers' helpers read off a socket (HTTP/1.0 requests, so
//! never chunked): the status line's code and the body after the blank line.

/// The status code and body of a whole HTTP response; panics, showing it, on anything else.
pub fn parse_http_response(response: &[u8]) -> (u16, String) {
    let response = String::from_utf8_lossy(response);
    let status = response
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body_are_split_at_the_blank_line() {
        let answer = b"HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{\"a\":\"\r\n\"}";
        assert_eq!(
            parse_http_response(answer),
            (201, "{\"a\":\"\r\n\"}".to_owned())
        );
        assert_eq!(
            parse_http_response(b"HTTP/1.0 204 No Content\r\n\r\n"),
            (204, String::new())
        );
    }

    #[test]
    #[should_panic(expected = "not an HTTP response")]
    fn anything_else_is_refused() {
        parse_http_response(b"SSH-2.0-OpenSSH_9.2\r\n");
    }
}
