//! The D-Bus client of the systemd driver (cargo feature `systemd`): zbus on a current-thread
//! tokio runtime (see the module above for why one connection lives for one call).

use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::OwnedObjectPath;

use super::{Property, Unit, Value};
use crate::cgroups::CgroupError;

/// The system bus, unless DBUS_SYSTEM_BUS_ADDRESS names another.
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a start or stop job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// A property as zbus sends it.
fn dbus_value(v: Value) -> zbus::zvariant::Value<'static> {
    use zbus::zvariant::Value as V;
    match v {
        Value::U64(n) => V::U64(n),
        Value::Bool(b) => V::Bool(b),
        Value::Str(s) => V::from(s),
        Value::Pids(p) => V::from(p),
        Value::DeviceAllow(list) => V::from(list),
    }
}

/// Properties as zbus sends them.
fn dbus_props(props: Vec<Property>) -> Vec<(&'static str, zbus::zvariant::Value<'static>)> {
    props.into_iter().map(|(n, v)| (n, dbus_value(v))).collect()
}

/// A connection to systemd.
pub struct Systemd {
    conn: Option<zbus::Connection>,
    rt: tokio::runtime::Runtime,
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // The connection's tasks live on the runtime: drop it there. The runtime goes next,
        // joining the blocking-pool thread zbus started.
        let _in = self.rt.enter();
        self.conn.take();
    }
}

fn dbus_err(what: &str) -> impl FnOnce(zbus::Error) -> CgroupError + '_ {
    move |e| {
        let detail = match &e {
            zbus::Error::MethodError(name, Some(desc), _) => format!("{desc} ({name})"),
            _ => e.to_string(),
        };
        CgroupError::Systemd(format!("{what}: {detail}"))
    }
}

fn is_error(e: &zbus::Error, name: &str) -> bool {
    matches!(e, zbus::Error::MethodError(n, _, _) if n.as_str() == name)
}

impl Systemd {
    /// Connect to systemd through the system bus (root only).
    pub fn connect() -> Result<Systemd, CgroupError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(CgroupError::Systemd(
                "--systemd-cgroup: contain's systemd driver needs root (a rootless container uses cgroupfs: omit the flag)".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CgroupError::Systemd(format!("start the D-Bus client: {e}")))?;
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| format!("unix:path={SYSTEM_BUS}"));
        let unreachable = |e: zbus::Error| {
            CgroupError::Systemd(format!(
                "--systemd-cgroup: cannot reach systemd on the system bus {address} ({e}); is systemd this host's init, with D-Bus running? Without it, omit the flag (cgroupfs)"
            ))
        };
        let conn = rt.block_on(async {
            let conn = zbus::connection::Builder::address(address.as_str())
                .map_err(unreachable)?
                .internal_executor(false)
                .method_timeout(JOB_TIMEOUT)
                .build()
                .await
                .map_err(unreachable)?;
            // Is systemd there at all (a bus without it answers ServiceUnknown)?
            conn.call_method(Some(DEST), PATH, Some(MANAGER), "GetUnit", &("-.slice",))
                .await
                .map_err(unreachable)?;
            Ok::<_, CgroupError>(conn)
        })?;
        Ok(Systemd {
            conn: Some(conn),
            rt,
        })
    }

    async fn call<B>(&self, method: &str, body: &B) -> zbus::Result<zbus::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let conn = self.conn.as_ref().ok_or(zbus::Error::InvalidReply)?;
        conn.call_method(Some(DEST), PATH, Some(MANAGER), method, body)
            .await
    }

    /// Run a job-returning method and wait for the job to finish; Ok(None) when systemd
    /// answered with the error `tolerated`.
    fn job<B>(
        &self,
        what: &str,
        method: &str,
        body: &B,
        tolerated: Option<&str>,
    ) -> Result<Option<()>, CgroupError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.rt.block_on(async {
            self.call("Subscribe", &())
                .await
                .map_err(dbus_err("subscribe to systemd's signals"))?;
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface(MANAGER)
                .and_then(|b| b.member("JobRemoved"))
                .map_err(dbus_err(what))?
                .build();
            let conn = self.conn.as_ref().ok_or_else(|| {
                CgroupError::Systemd(format!("{what}: the connection is closed"))
            })?;
            let mut stream = zbus::MessageStream::for_match_rule(rule, conn, None)
                .await
                .map_err(dbus_err(what))?;
            let job: OwnedObjectPath = match self.call(method, body).await {
                Ok(reply) => reply.body().deserialize().map_err(dbus_err(what))?,
                Err(e) if tolerated.is_some_and(|t| is_error(&e, t)) => return Ok(None),
                Err(e) => return Err(dbus_err(what)(e)),
            };
            let wait = async {
                while let Some(msg) = stream.next().await {
                    let Ok(msg) = msg else { continue };
                    let h = msg.header();
                    if h.member().map(|m| m.as_str()) != Some("JobRemoved") {
                        continue;
                    }
                    let Ok((_, path, unit, result)) = msg.body().deserialize::<(
                        u32,
                        OwnedObjectPath,
                        String,
                        String,
                    )>() else {
                        continue;
                    };
                    if path == job {
                        return Ok((unit, result));
                    }
                }
                Err(CgroupError::Systemd(format!(
                    "{what}: systemd closed the connection"
                )))
            };
            let (unit, result) = tokio::time::timeout(JOB_TIMEOUT, wait)
                .await
                .map_err(|_| {
                    CgroupError::Systemd(format!(
                        "{what}: systemd's job did not finish in {} s",
                        JOB_TIMEOUT.as_secs()
                    ))
                })??;
            if result != "done" {
                return Err(CgroupError::Systemd(format!(
                    "{what}: systemd's job for {unit} ended with \"{result}\" (see `journalctl -u {unit}`)"
                )));
            }
            let _ = self.call("Unsubscribe", &()).await;
            Ok(Some(()))
        })
    }

    /// Start the container's scope holding `pid`, with `extra` properties (the limits).
    pub fn start_scope(
        &self,
        unit: &Unit,
        id: &str,
        pid: i32,
        unified: bool,
        extra: Vec<Property>,
    ) -> Result<(), CgroupError> {
        let mut props: Vec<Property> = vec![
            ("Description", Value::Str(format!("contain container {id}"))),
            ("PIDs", Value::Pids(vec![pid as u32])),
            ("Delegate", Value::Bool(true)),
            ("DefaultDependencies", Value::Bool(false)),
            ("MemoryAccounting", Value::Bool(true)),
            ("CPUAccounting", Value::Bool(true)),
            ("TasksAccounting", Value::Bool(true)),
            (
                if unified {
                    "IOAccounting"
                } else {
                    "BlockIOAccounting"
                },
                Value::Bool(true),
            ),
        ];
        if unit.slice != "-.slice" {
            props.push(("Slice", Value::Str(unit.slice.clone())));
        }
        props.extend(extra);
        let props = dbus_props(props);
        let aux: Vec<(&str, Vec<(&str, zbus::zvariant::Value)>)> = Vec::new();
        let what = format!("start the systemd scope {}", unit.name);
        match self.job(
            &what,
            "StartTransientUnit",
            &(unit.name.as_str(), "replace", props, aux),
            Some("org.freedesktop.systemd1.UnitExists"),
        )? {
            Some(()) => Ok(()),
            None => Err(CgroupError::Systemd(format!(
                "{what}: systemd already has a unit of that name (another container's cgroupsPath?)"
            ))),
        }
    }

    /// Change a running unit's properties (`update`).
    pub fn set_properties(&self, name: &str, props: Vec<Property>) -> Result<(), CgroupError> {
        self.rt
            .block_on(self.call("SetUnitProperties", &(name, true, dbus_props(props))))
            .map(drop)
            .map_err(dbus_err(&format!("set the properties of {name}")))
    }

    /// Stop the unit (gone already is fine: systemd stops an empty scope by itself).
    pub fn stop(&self, name: &str) -> Result<(), CgroupError> {
        self.job(
            &format!("stop the systemd scope {name}"),
            "StopUnit",
            &(name, "replace"),
            Some("org.freedesktop.systemd1.NoSuchUnit"),
        )?;
        let _ = self.rt.block_on(self.call("ResetFailedUnit", &(name,)));
        Ok(())
    }
}
