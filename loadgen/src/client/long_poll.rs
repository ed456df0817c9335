//! Long-polling client: `GET /long-poll?since=<cursor>&timeout=<s>`, and again as soon
//! as the answer arrives, over one keep-alive connection.

use super::connect::Connection;
use super::{ClientError, Session};

/// Long-polls until stopped.
pub async fn run(session: &mut Session) -> Result<(), ClientError> {
    let mut connection: Option<Connection> = None;
    let timeout = session.settings.long_poll_timeout.as_secs_f64();
    loop {
        // Without keep-alive, every request on a connection (and handshake) of its own,
        // the previous one closed first.
        if !session.settings.keepalive {
            connection = None;
        }
        if connection.is_none() {
            connection = Some(Connection::open(session).await?);
        }
        let open = connection.as_mut().expect("opened above");
        let path = format!("/long-poll?since={}&timeout={timeout}", session.resume_from());
        let body = tokio::select! {
            _ = session.stop.cancelled() => return Err(ClientError::Stopped),
            body = open.get_body(session, &path) => body?,
        };
        session.poll_body(&body)?;
    }
}
