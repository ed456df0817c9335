//! Long-polling client: `GET /long-poll?since=<cursor>&timeout=<s>`, and again as soon
//! as the answer arrives, over one keep-alive connection.

use super::lean_http::LeanConnection;
use super::{ClientError, Session};

/// Long-polls until stopped.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let mut connection = LeanConnection::open(session).await?;
    let timeout = session.settings.long_poll_timeout.as_secs_f64();
    loop {
        if !session.settings.keepalive {
            connection = LeanConnection::open(session).await?;
        }
        let path = format!("/long-poll?since={}&timeout={timeout}", session.resume_from());
        let body = tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            body = connection.get_body(session, &path) => body?,
        };
        session.poll_body(&body)?;
    }
}
