//! reqsign's own requests (OAuth2 token exchanges, STS, instance metadata) through reqwest,
//! for the requests this crate signs itself beside OpenDAL ([`super::gcs_json`],
//! [`super::s3_versioning`]).

/// reqwest as reqsign's HTTP client.
#[derive(Debug)]
pub(super) struct ReqwestSend(pub reqwest::Client);

impl reqsign_core::HttpSend for ReqwestSend {
    async fn http_send(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> reqsign_core::Result<http::Response<bytes::Bytes>> {
        let unexpected = |e: reqwest::Error| reqsign_core::Error::unexpected(e.to_string());
        let request = reqwest::Request::try_from(request).map_err(unexpected)?;
        let answer = self.0.execute(request).await.map_err(unexpected)?;
        let mut response = http::Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        let body = answer.bytes().await.map_err(unexpected)?;
        response
            .body(body)
            .map_err(|e| reqsign_core::Error::unexpected(e.to_string()))
    }
}
