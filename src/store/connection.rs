//! A Redis connection that is opened on first use and reopened after a failure,
//! so the processes start and recover while Redis is down.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::Mutex;

use super::StoreError;

/// Time allowed to open a TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one command, scripts included.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared access to Redis for short commands.
pub struct Redis {
    client: Client,
    manager: Mutex<Option<ConnectionManager>>,
}

impl Redis {
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            client: Client::open(url)?,
            manager: Mutex::new(None),
        })
    }

    /// Returns a handle to the shared connection, opening it when there is none.
    /// The handle reconnects by itself after Redis restarts.
    pub async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut manager = self.manager.lock().await;
        if let Some(manager) = manager.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let opened = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *manager = Some(opened.clone());
        Ok(opened)
    }

    /// Opens a connection of its own for blocking commands, whose response
    /// timeout must be longer than the longest block it is used for.
    pub async fn dedicated(&self, block: Duration) -> Result<MultiplexedConnection, StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + RESPONSE_TIMEOUT));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// Opens a pub/sub connection.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        Ok(self.client.get_async_pubsub().await?)
    }
}
