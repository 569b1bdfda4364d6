use super::*;

/// A fake `/` with the files [`read`] looks at, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let root = std::env::temp_dir().join(format!("es-threads-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Tree(root)
    }

    fn file(&self, rel: &str, text: &str) -> &Tree {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn choose(&self) -> Choice {
        choose(&read(&self.0).unwrap()).unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const A53: u16 = 0xd03;
const A55: u16 = 0xd05;
const A72: u16 = 0xd08;
const A76: u16 = 0xd0b;
const A78AE: u16 = 0xd42;

/// A board with one entry per CPU in each list given (all CPUs allowed and online, root cgroup).
fn board(name: &str, capacity: &[u64], max_freq_khz: &[u64], parts: &[u16]) -> Tree {
    let count = capacity.len().max(max_freq_khz.len()).max(parts.len());
    let tree = Tree::new(name);
    let last = count - 1;
    tree.file(
        "proc/self/status",
        &format!("Name:\tedgescribe\nCpus_allowed:\tff\nCpus_allowed_list:\t0-{last}\n"),
    )
    .file("sys/devices/system/cpu/online", &format!("0-{last}\n"))
    .file("proc/self/cgroup", "0::/\n");
    for (cpu, capacity) in capacity.iter().enumerate() {
        tree.file(
            &format!("sys/devices/system/cpu/cpu{cpu}/cpu_capacity"),
            &format!("{capacity}\n"),
        );
    }
    for (cpu, khz) in max_freq_khz.iter().enumerate() {
        let rel = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq");
        tree.file(&rel, &format!("{khz}\n"));
    }
    let cpuinfo: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(cpu, part)| {
            format!(
                "processor\t: {cpu}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n\
                 CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0x{part:03x}\nCPU revision\t: 1\n"
            )
        })
        .collect();
    tree.file("proc/cpuinfo", &cpuinfo.join("\n"));
    tree
}

fn rk3588_capacity() -> Vec<u64> {
    // Cortex-A55 ×4 (cpu0-3), then two A76 clusters whose clocks differ slightly.
    vec![414, 414, 414, 414, 1024, 1024, 1015, 1015]
}

fn rk3588_parts() -> Vec<u16> {
    [[A55; 4], [A76; 4]].concat()
}

#[test]
fn raspberry_pi_4_and_5_leave_one_core() {
    let pi4 = board("pi4", &[1024; 4], &[1_800_000; 4], &[A72; 4]).choose();
    assert_eq!(pi4.threads, 3);
    assert_eq!(
        pi4.reason,
        "3 of 4 CPUs: all alike (cpu_capacity 1024); one left for audio capture, MQTT and the OS"
    );
    assert_eq!(
        board("pi5", &[1024; 4], &[2_400_000; 4], &[A76; 4])
            .choose()
            .threads,
        3
    );
}

#[test]
fn pi_zero_2_w_leaves_one_core() {
    assert_eq!(
        board("zero2", &[1024; 4], &[1_000_000; 4], &[A53; 4])
            .choose()
            .threads,
        3
    );
}

#[test]
fn rk3588_uses_its_big_cores_only() {
    let choice = board("rk3588", &rk3588_capacity(), &[], &rk3588_parts()).choose();
    assert_eq!(choice.threads, 4);
    assert_eq!(
        choice.reason,
        "4 of 8 CPUs: the fast cores (cpu_capacity 1015; the other 4 at 414 or less would hold up \
         every product)"
    );
}

#[test]
fn without_cpu_capacity_the_clock_and_core_type_find_the_big_cores() {
    // A55 at 1.8 GHz, A76 at 2.4 GHz: by clock alone the A55 would count as 3/4 of a big core.
    let freqs = [[1_800_000; 4], [2_400_000; 4]].concat();
    assert_eq!(
        board("rk3588-freq", &[], &freqs, &rk3588_parts())
            .choose()
            .threads,
        4
    );
    // Only the core type known.
    assert_eq!(
        board("rk3588-midr", &[], &[], &rk3588_parts())
            .choose()
            .threads,
        4
    );
    // Only the clock known, cores alike: all but one.
    assert_eq!(
        board("freq-only", &[], &[1_500_000; 6], &[])
            .choose()
            .threads,
        5
    );
}

#[test]
fn jetson_orin_nano_and_agx_orin_leave_one_core() {
    let nano = board("orin-nano", &[1024; 6], &[1_510_400; 6], &[A78AE; 6]).choose();
    assert_eq!(nano.threads, 5);
    assert_eq!(
        board("agx-orin", &[1024; 12], &[2_201_600; 12], &[A78AE; 12])
            .choose()
            .threads,
        11
    );
}

#[test]
fn generic_x86_without_cpu_part_or_capacity() {
    let tree = board("x86", &[], &[4_200_000; 8], &[]);
    tree.file(
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen\n",
    );
    assert_eq!(tree.choose().threads, 7);
    // No clock either (a VM): all alike, by default.
    let vm = Tree::new("vm");
    vm.file("proc/self/status", "Cpus_allowed_list:\t0-7\n");
    let choice = vm.choose();
    assert_eq!(choice.threads, 7);
    assert!(
        choice.reason.contains("no speed known"),
        "{}",
        choice.reason
    );
}

#[test]
fn container_quota_caps_the_count() {
    let v2 = board("quota-v2", &[1024; 8], &[], &[]);
    v2.file("sys/fs/cgroup/cpu.max", "200000 100000\n");
    let choice = v2.choose();
    assert_eq!(choice.threads, 2);
    assert_eq!(
        choice.reason,
        "2 of 8 CPUs: all alike (cpu_capacity 1024); cgroup quota 2.0 CPUs"
    );

    // v1, the host's path listed but the container's own cgroup mounted at the root; 1.5 CPUs.
    let v1 = board("quota-v1", &[1024; 8], &[], &[]);
    v1.file(
        "proc/self/cgroup",
        "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
    )
    .file("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000\n")
    .file("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    assert_eq!(v1.choose().threads, 1);

    // A systemd service's quota, on its own cgroup below the root (no quota there); 6 CPUs: 5.
    let service = board("quota-service", &[1024; 8], &[], &[]);
    service
        .file("proc/self/cgroup", "0::/system.slice/edgescribe.service\n")
        .file("sys/fs/cgroup/cpu.max", "max 100000\n")
        .file(
            "sys/fs/cgroup/system.slice/edgescribe.service/cpu.max",
            "600000 100000\n",
        );
    assert_eq!(service.choose().threads, 5);
}

#[test]
fn affinity_mask_limits_the_cpus() {
    let tree = board("affinity", &rk3588_capacity(), &[], &rk3588_parts());
    // Pinned to two A55 and two A76 cores: the A76 pair only, the A55 pair left to the rest.
    tree.file("proc/self/status", "Cpus_allowed_list:\t2-5\n");
    assert_eq!(tree.choose().threads, 2);
    // Pinned to the four A76 cores: they are everything, so one is left.
    tree.file("proc/self/status", "Cpus_allowed_list:\t4-7\n");
    assert_eq!(tree.choose().threads, 3);
    // An offline CPU is not allowed, whatever the mask says.
    tree.file("sys/devices/system/cpu/online", "0-5\n");
    assert_eq!(tree.choose().threads, 2);
}

#[test]
fn missing_files_fall_back_to_the_standard_library() {
    let empty = Tree::new("empty");
    let choice = resolve(read(&empty.0), 6);
    assert_eq!(choice.threads, 6);
    assert!(
        choice.reason.starts_with("one per CPU available"),
        "{}",
        choice.reason
    );
    assert_eq!(resolve(read(&empty.0), 0).threads, 1);
}

#[test]
fn garbage_files_never_panic() {
    let tree = board("garbage", &rk3588_capacity(), &[], &rk3588_parts());
    tree.file("proc/self/status", "Cpus_allowed_list:\tzz-\n")
        .file("sys/devices/system/cpu/cpu0/cpu_capacity", "lots\n")
        .file("proc/cpuinfo", "processor : x\nCPU part : 0xzz\n\n\n:::\n")
        .file("proc/self/cgroup", "garbage\n0::/\n::\n")
        .file("sys/fs/cgroup/cpu.max", "100000\n");
    // The online list stands in for the mask; no speed common to all CPUs.
    let choice = tree.choose();
    assert_eq!(choice.threads, 7);
    // A zero capacity or clock is no speed either (it would make one thread look best).
    for cpu in 0..8 {
        tree.file(
            &format!("sys/devices/system/cpu/cpu{cpu}/cpu_capacity"),
            "0\n",
        )
        .file(
            &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq"),
            "0\n",
        );
    }
    assert_eq!(tree.choose().threads, 7);
    tree.file("sys/devices/system/cpu/online", "7-3\n");
    assert_eq!(resolve(read(&tree.0), 4).threads, 4);
}

#[test]
fn the_standard_librarys_count_caps_the_choice() {
    let tree = board("capped", &[1024; 8], &[], &[]);
    let choice = resolve(read(&tree.0), 3);
    assert_eq!(choice.threads, 3);
    assert!(
        choice.reason.starts_with("3: the standard library's count"),
        "{}",
        choice.reason
    );
    assert_eq!(resolve(read(&tree.0), 16).threads, 7);
}

fn cpus(capacities: &[u64]) -> Cpus {
    let allowed = capacities
        .iter()
        .enumerate()
        .map(|(id, capacity)| Cpu {
            id,
            capacity: Some(*capacity),
            ..Cpu::default()
        })
        .collect();
    Cpus {
        allowed,
        quota_cpus: None,
    }
}

#[test]
fn slower_cores_join_while_they_add_throughput() {
    // A phone-like 1 + 3 + 4: the prime and middle cores; the LITTLE ones would halve the pace.
    let phone = [1024, 880, 880, 880, 250, 250, 250, 250];
    assert_eq!(choose(&cpus(&phone)).unwrap().threads, 4);
    // Nearly alike clusters all join, and being everything, leave one.
    assert_eq!(
        choose(&cpus(&[1024, 1024, 980, 980, 980, 980]))
            .unwrap()
            .threads,
        5
    );
    // A LITTLE cluster at more than half the big one's speed is worth it.
    assert_eq!(choose(&cpus(&[1024, 1024, 600, 600])).unwrap().threads, 3);
    // A lone big core beside slow ones is better alone.
    assert_eq!(choose(&cpus(&[1024, 300, 300])).unwrap().threads, 1);
}

#[test]
fn small_and_empty_cpu_sets() {
    assert_eq!(choose(&cpus(&[])), None);
    assert_eq!(choose(&cpus(&[1024])).unwrap().threads, 1);
    assert_eq!(choose(&cpus(&[1024; 3])).unwrap().threads, 3);
    let mut tiny_quota = cpus(&[1024; 4]);
    tiny_quota.quota_cpus = Some(0.5);
    assert_eq!(choose(&tiny_quota).unwrap().threads, 1);
    assert_eq!(
        choose(&cpus(&[1024; 400])).unwrap().threads,
        MAX_THREADS - 1
    );
}

#[test]
fn cpu_lists() {
    assert_eq!(
        parse_cpu_list("0-3,6,8-9\n"),
        Some(vec![0, 1, 2, 3, 6, 8, 9])
    );
    assert_eq!(parse_cpu_list("5"), Some(vec![5]));
    for bad in ["", "3-1", "a", "0-", "0-99999999999"] {
        assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
    }
}
