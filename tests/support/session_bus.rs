//! A private D-Bus session bus for tests: our own configuration, without service activation,
//! so that only the processes a test starts ever run on it. Everyone may own any name, send
//! anywhere and eavesdrop (the desktop test watches popups go by).

use std::path::Path;

/// The bus configuration, listening on a socket in `listen_dir` (mode 0700).
pub fn config(listen_dir: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        listen_dir.display()
    )
}
