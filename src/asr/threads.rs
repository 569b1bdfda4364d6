//! The default number of inference threads (`model.threads = 0`, no `--threads`), chosen from the CPUs
//! this process may run on. [`choose`] is pure; [`read`] fills its input from a sysfs/procfs tree
//! under any root (tests point it at fake boards); [`default_threads`] runs both once and logs why.
//!
//! The rule (reasoning and board table: docs/design.md, "Inference threads"):
//! 1. Only the fast cores. Each product is cut into a few chunks per thread (tract: one to four;
//!    our norm and quantiser passes: four), so it ends when the slowest thread's last chunk does.
//!    A LITTLE core (in-order A53/A55, about half a big core's work per MHz, at a lower clock)
//!    holds up every product. Slower cores join only while they raise the group's throughput,
//!    counted as `cores × the slowest one's speed`.
//! 2. At most the cgroup's CPU quota: threads beyond it are throttled for the rest of each period.
//! 3. One core left over when the group is everything the process may use and has 4 or more
//!    cores: audio capture, VAD, MQTT and the OS then run beside the products instead of
//!    preempting a worker mid-chunk, which stalls the whole product. A board with LITTLE cores
//!    leaves them to that work already; below 4, a spare would cost a third or more of the speed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The most threads `model.threads` and `--threads` accept, and the most chosen by default.
pub const MAX_THREADS: usize = 256;

/// Cores from which one is left for the rest of the daemon (see the module's rule 3).
const SPARE_FROM_CORES: usize = 4;

/// A core's speed per MHz against a big out-of-order core (1024), for the MIDR "CPU part" of Arm's
/// in-order cores: the kernel's own device trees say about half (`capacity-dmips-mhz`: A55 530
/// beside the A76's 1024 on RK3588, A53 485 beside the A72's 1024 on RK3399).
const LITTLE_PER_MHZ: u64 = 512;
const BIG_PER_MHZ: u64 = 1024;
/// Arm Ltd's MIDR implementer code; other implementers number their parts differently.
const ARM_IMPLEMENTER: u16 = 0x41;
/// Cortex-A53, A35, A55, A510, A520: in-order cores.
const LITTLE_PARTS: [u16; 5] = [0xd03, 0xd04, 0xd05, 0xd46, 0xd80];

/// One CPU this process may run on, as far as the files tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub id: usize,
    /// sysfs `cpu_capacity`: the kernel's relative speed, 1024 for the fastest core.
    pub capacity: Option<u64>,
    /// sysfs `cpufreq/cpuinfo_max_freq`.
    pub max_freq_khz: Option<u64>,
    /// `/proc/cpuinfo`'s "CPU implementer" and "CPU part" (MIDR fields; ARM only).
    pub midr: Option<(u16, u16)>,
}

/// What [`choose`] decides from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cpus {
    /// The CPUs in this process's affinity mask that are online.
    pub allowed: Vec<Cpu>,
    /// The cgroup's CPU quota (`cpu.max` or `cpu.cfs_quota_us / cpu.cfs_period_us`), if any.
    pub quota_cpus: Option<f64>,
}

/// A thread count and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub threads: usize,
    pub reason: String,
}

/// The default thread count for `cpus`; `None` if it names no CPU.
pub fn choose(cpus: &Cpus) -> Option<Choice> {
    let total = cpus.allowed.len();
    if total == 0 {
        return None;
    }
    let mut why = Vec::new();
    let group = match speeds(&cpus.allowed) {
        Some((source, mut speeds)) => {
            speeds.sort_unstable_by(|a, b| b.cmp(a));
            let mut best = 1;
            for size in 2..=total {
                if size as u64 * speeds[size - 1] > best as u64 * speeds[best - 1] {
                    best = size;
                }
            }
            if best < total {
                why.push(format!(
                    "the fast cores ({source} {}; the other {} at {} or less would hold up every product)",
                    speeds[best - 1],
                    total - best,
                    speeds[best]
                ));
            } else if speeds[0] == speeds[total - 1] {
                why.push(format!("all alike ({source} {})", speeds[0]));
            } else {
                why.push(format!(
                    "all ({source} {} to {})",
                    speeds[0],
                    speeds[total - 1]
                ));
            }
            best
        }
        None => {
            why.push("no speed known: taken as alike".to_string());
            total
        }
    };
    let mut threads = group.min(MAX_THREADS);
    let mut alone = group == total;
    if let Some(quota) = cpus.quota_cpus {
        // As `std::thread::available_parallelism`: whole CPUs, at least one.
        let quota_cores = (quota.floor() as usize).max(1);
        if quota_cores < threads {
            threads = quota_cores;
            alone = true;
            why.push(format!("cgroup quota {quota:.1} CPUs"));
        }
    }
    if alone && threads >= SPARE_FROM_CORES {
        threads -= 1;
        why.push("one left for audio capture, MQTT and the OS".to_string());
    }
    Some(Choice {
        threads,
        reason: format!("{threads} of {total} CPUs: {}", why.join("; ")),
    })
}

/// Each CPU's speed from the best source every CPU has: `cpu_capacity`, else the maximum clock in
/// MHz weighed by the core type, else the core type alone. `None`: no source common to all. A
/// speed of 0 (a garbage file) counts as unknown: it would make one thread look best.
fn speeds(cpus: &[Cpu]) -> Option<(&'static str, Vec<u64>)> {
    let known = |speed: Option<u64>| speed.filter(|&s| s > 0);
    if let Some(speeds) = cpus.iter().map(|c| known(c.capacity)).collect() {
        return Some(("cpu_capacity", speeds));
    }
    if let Some(speeds) = cpus
        .iter()
        .map(|c| known(Some(c.max_freq_khz? * per_mhz(c.midr) / BIG_PER_MHZ / 1000)))
        .collect()
    {
        return Some(("MHz (LITTLE cores at half)", speeds));
    }
    let speeds = cpus
        .iter()
        .map(|c| c.midr.map(|m| per_mhz(Some(m))))
        .collect::<Option<Vec<u64>>>()?;
    Some(("core type", speeds))
}

fn per_mhz(midr: Option<(u16, u16)>) -> u64 {
    match midr {
        Some((ARM_IMPLEMENTER, part)) if LITTLE_PARTS.contains(&part) => LITTLE_PER_MHZ,
        _ => BIG_PER_MHZ,
    }
}

/// [`choose`] on what [`read`] found, else `std_count` (`available_parallelism`), which also caps
/// it: the standard library finds cgroup mounts [`read`] does not look for.
pub fn resolve(read: Result<Cpus, String>, std_count: usize) -> Choice {
    let fallback = |why: String| Choice {
        threads: std_count.clamp(1, MAX_THREADS),
        reason: format!("one per CPU available ({why})"),
    };
    let choice = match read.map(|cpus| choose(&cpus)) {
        Ok(Some(choice)) => choice,
        Ok(None) => return fallback("no allowed CPU listed".to_string()),
        Err(e) => {
            log::debug!("inference threads: CPU description unreadable: {e}");
            return fallback(e);
        }
    };
    if choice.threads > std_count {
        return Choice {
            threads: std_count.max(1),
            reason: format!(
                "{std_count}: the standard library's count of available CPUs, below {}",
                choice.reason
            ),
        };
    }
    choice
}

/// The default thread count on this machine, decided (and logged) once.
pub fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let std_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let choice = resolve(read(Path::new("/")), std_count);
        log::info!("inference threads: {}", choice.reason);
        choice.threads
    })
}

/// Reads the CPUs under `root` (`/` on a live system): `proc/self/status`'s `Cpus_allowed_list`
/// and `sys/devices/system/cpu/online` (either; both: the CPUs in both), each CPU's `cpu_capacity`
/// and `cpufreq/cpuinfo_max_freq`, `proc/cpuinfo`, and the cgroup quota. Absent or unparsable
/// per-CPU files leave that field `None`; only finding no CPU list at all is an error.
pub fn read(root: &Path) -> Result<Cpus, String> {
    let text = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    let affinity = text("proc/self/status").and_then(|status| {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        parse_cpu_list(line)
    });
    let online = text("sys/devices/system/cpu/online").and_then(|s| parse_cpu_list(&s));
    let ids =
        match (affinity, online) {
            (Some(a), Some(o)) => a.into_iter().filter(|id| o.contains(id)).collect(),
            (Some(list), None) | (None, Some(list)) => list,
            (None, None) => return Err(
                "neither proc/self/status's Cpus_allowed_list nor sys/devices/system/cpu/online"
                    .into(),
            ),
        };
    let midrs = text("proc/cpuinfo").map_or_else(Vec::new, |s| parse_cpuinfo(&s));
    let number = |rel: String| text(&rel).and_then(|s| s.trim().parse::<u64>().ok());
    let allowed = ids
        .into_iter()
        .map(|id| Cpu {
            id,
            capacity: number(format!("sys/devices/system/cpu/cpu{id}/cpu_capacity")),
            max_freq_khz: number(format!(
                "sys/devices/system/cpu/cpu{id}/cpufreq/cpuinfo_max_freq"
            )),
            midr: midrs
                .iter()
                .find(|(cpu, _)| *cpu == id)
                .map(|(_, midr)| *midr),
        })
        .collect();
    Ok(Cpus {
        allowed,
        quota_cpus: text("proc/self/cgroup").and_then(|s| quota_cpus(root, &s)),
    })
}

/// "0-3,6,8-9" → [0, 1, 2, 3, 6, 8, 9]; `None` if malformed (or absurdly large).
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut ids = Vec::new();
    for range in list.trim().split(',').filter(|r| !r.is_empty()) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (usize, usize) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
        if last < first || last >= 1 << 16 {
            return None;
        }
        ids.extend(first..=last);
    }
    ids.sort_unstable();
    ids.dedup();
    (!ids.is_empty()).then_some(ids)
}

/// Each "processor" block's MIDR implementer and part (ARM's `/proc/cpuinfo`; x86 has neither).
fn parse_cpuinfo(cpuinfo: &str) -> Vec<(usize, (u16, u16))> {
    let hex = |v: &str| u16::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok();
    let mut found = Vec::new();
    for block in cpuinfo.split("\n\n") {
        let field = |name: &str| {
            block.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then_some(value)
            })
        };
        let cpu = field("processor").and_then(|v| v.trim().parse().ok());
        let implementer = field("CPU implementer").and_then(hex);
        let part = field("CPU part").and_then(hex);
        if let (Some(cpu), Some(implementer), Some(part)) = (cpu, implementer, part) {
            found.push((cpu, (implementer, part)));
        }
    }
    found
}

/// The smallest CPU quota on the way from the process's cgroup up to the root, cgroup v2
/// (`cpu.max`) or v1 (`cpu.cfs_quota_us`), mounted at `sys/fs/cgroup` as systemd and container
/// runtimes do. In a container the listed path may be the host's: the mount's root is read too.
fn quota_cpus(root: &Path, cgroup: &str) -> Option<f64> {
    let mut smallest: Option<f64> = None;
    for line in cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mounts: Vec<PathBuf> = if controllers.is_empty() {
            vec![root.join("sys/fs/cgroup")]
        } else if controllers.split(',').any(|c| c == "cpu") {
            let base = root.join("sys/fs/cgroup");
            vec![base.join(controllers), base.join("cpu")]
        } else {
            continue;
        };
        for mount in mounts {
            let mut dir = mount.clone();
            let mut dirs = vec![mount];
            for part in path.split('/').filter(|p| !p.is_empty() && *p != "..") {
                dir.push(part);
                dirs.push(dir.clone());
            }
            for dir in dirs {
                if let Some(quota) = quota_in(&dir) {
                    smallest = Some(smallest.map_or(quota, |s| s.min(quota)));
                }
            }
        }
    }
    smallest
}

/// The quota set in one cgroup directory, in CPUs.
fn quota_in(dir: &Path) -> Option<f64> {
    let number = |name: &str| -> Option<f64> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        text.trim().parse().ok()
    };
    let (quota_us, period_us) = match std::fs::read_to_string(dir.join("cpu.max")) {
        // "max 100000" (no quota) fails to parse as a number.
        Ok(max) => {
            let mut fields = max.split_whitespace();
            (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?)
        }
        Err(_) => (number("cpu.cfs_quota_us")?, number("cpu.cfs_period_us")?),
    };
    // v1's "no quota" is -1.
    (quota_us > 0.0 && period_us > 0.0).then(|| quota_us / period_us)
}

#[cfg(test)]
#[path = "threads_tests.rs"]
mod tests;
