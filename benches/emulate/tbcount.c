/* tbcount: a qemu TCG plugin that counts how many times each translated block (TB) of an aarch64 guest
 * executes, so that the harness can attribute instructions to the functions (and from them to the ops) of
 * the binary. Why per TB and not per instruction: one callback per block keeps the emulation about as fast
 * as the class-counting plugin (../shared/tools/qemu-insn/), and a block never spans two functions.
 *
 *   qemu-aarch64 -d page -D qemu.log -plugin ./libtbcount.so,out=FILE prog args...
 *
 * FILE, written when the guest exits:
 *   tb VADDR EXECS INSNS DOT SIMD MEM OTHER   one line per translation (a block translated twice, e.g. after a
 *                                             code-cache flush, gives two lines: the reader adds them up)
 *   mnem NAME COUNT                           executions per mnemonic, over all blocks
 * The classes follow the shared plugin's definitions (dot products; other Advanced SIMD; loads and stores;
 * the rest), so the harness can check that both plugins saw the same instructions. Counts are added
 * atomically: guest threads run in parallel under MTTCG. */
#include <glib.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { DOT, SIMD, MEM, OTHER, NCLASS };

typedef struct {
    char name[24];
} Mnem;

typedef struct {
    uint64_t vaddr;
    uint64_t execs;
    uint32_t n_insns;
    uint32_t class_n[NCLASS];
    Mnem **mnems; /* one per instruction, interned: the same pointer for the same mnemonic */
} Block;

static GMutex lock;          /* guards blocks and names: translation runs on several vCPU threads */
static GPtrArray *blocks;    /* every Block ever translated */
static GHashTable *names;    /* mnemonic -> Mnem* */
static char *out_path;

/* qemu 7.2's disassembler prints the dot-product and matrix-multiply instructions as ".byte": name them
 * from their encodings (Arm ARM, "Advanced SIMD three same (extension)" and "vector x indexed element"). */
static const char *name_undecoded(uint32_t w) {
    /* bit 30 is Q (64/128-bit vector), bit 29 U (unsigned) */
    if ((w & 0x9f20fc00) == 0x0e009400 && ((w >> 22) & 3) == 2) return (w & 0x20000000) ? "udot" : "sdot";
    if ((w & 0x9f00f400) == 0x0f00e000 && ((w >> 22) & 3) == 2) return (w & 0x20000000) ? "udot" : "sdot";
    if ((w & 0xffe0fc00) == 0x4e80a400) return "smmla";
    if ((w & 0xffe0fc00) == 0x6e80a400) return "ummla";
    if ((w & 0xffe0fc00) == 0x4e80ac00) return "usmmla";
    if ((w & 0xbfe0fc00) == 0x0e809c00) return "usdot";
    return NULL;
}

static int is_dot(const char *m) {
    static const char *dots[] = {"sdot", "udot", "usdot", "sudot", "smmla", "ummla", "usmmla"};
    for (size_t i = 0; i < G_N_ELEMENTS(dots); i++)
        if (!strcmp(m, dots[i])) return 1;
    return 0;
}

/* Loads and stores as the shared plugin counts them: every ld* mnemonic, and the st* ones whose third letter
 * makes them a plain, pair, structure, unscaled, release, non-temporal or exclusive store (str, stp, st1..4,
 * stur, stlr, stnp, stxr...), so that the two plugins' classes can be compared exactly. */
static int is_mem(const char *m) {
    return !strncmp(m, "ld", 2) || (!strncmp(m, "st", 2) && m[2] && strchr("rp1234ulnx", m[2]));
}

/* An Advanced SIMD instruction names a vector register (v0..v31) or a 128-bit q register in its operands. */
static int has_vector_operand(const char *ops) {
    for (const char *p = ops; *p; p++)
        if ((*p == 'v' || *p == 'q') && (p == ops || p[-1] == ' ' || p[-1] == '{') && p[1] >= '0' && p[1] <= '9')
            return 1;
    return 0;
}

static void block_exec(unsigned int vcpu, void *udata) {
    (void)vcpu;
    __atomic_fetch_add(&((Block *)udata)->execs, 1, __ATOMIC_RELAXED);
}

static void block_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    Block *b = g_new0(Block, 1);
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n_insns = (uint32_t)n;
    b->mnems = g_new0(Mnem *, n ? n : 1);
    g_mutex_lock(&lock);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        char *d = qemu_plugin_insn_disas(insn);
        char m[24] = {0};
        sscanf(d ? d : "?", "%23s", m);
        if (!strcmp(m, ".byte") && qemu_plugin_insn_size(insn) == 4) {
            uint32_t w;
            memcpy(&w, qemu_plugin_insn_data(insn), 4);
            const char *named = name_undecoded(w);
            if (named)
                g_strlcpy(m, named, sizeof m);
            else /* keep the encoding's top bits: enough to look the instruction up */
                g_snprintf(m, sizeof m, ".byte:%03x", w >> 20);
        }
        const char *ops = d ? d + strlen(m) : "";
        if (d && strncmp(d, m, strlen(m)) != 0) ops = ""; /* renamed .byte: no operands to read */
        int cls = is_dot(m) ? DOT : is_mem(m) ? MEM : has_vector_operand(ops) ? SIMD : OTHER;
        b->class_n[cls]++;
        Mnem *e = g_hash_table_lookup(names, m);
        if (!e) {
            e = g_new0(Mnem, 1);
            g_strlcpy(e->name, m, sizeof e->name);
            g_hash_table_insert(names, e->name, e);
        }
        b->mnems[i] = e;
        g_free(d);
    }
    g_ptr_array_add(blocks, b);
    g_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void write_counts(qemu_plugin_id_t id, void *p) {
    (void)id;
    (void)p;
    FILE *f = out_path ? fopen(out_path, "w") : NULL;
    if (!f) {
        qemu_plugin_outs("tbcount: cannot open out= file\n");
        return;
    }
    GHashTable *per_mnem = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    g_mutex_lock(&lock);
    for (guint i = 0; i < blocks->len; i++) {
        Block *b = g_ptr_array_index(blocks, i);
        uint64_t execs = __atomic_load_n(&b->execs, __ATOMIC_RELAXED);
        if (!execs) continue;
        fprintf(f, "tb %" PRIx64 " %" PRIu64 " %u %u %u %u %u\n", b->vaddr, execs, b->n_insns, b->class_n[DOT],
                b->class_n[SIMD], b->class_n[MEM], b->class_n[OTHER]);
        for (uint32_t k = 0; k < b->n_insns; k++) {
            uint64_t *c = g_hash_table_lookup(per_mnem, b->mnems[k]);
            if (!c) {
                c = g_new0(uint64_t, 1);
                g_hash_table_insert(per_mnem, b->mnems[k], c);
            }
            *c += execs;
        }
    }
    g_mutex_unlock(&lock);
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, per_mnem);
    while (g_hash_table_iter_next(&it, &key, &value))
        fprintf(f, "mnem %s %" PRIu64 "\n", ((Mnem *)key)->name, *(uint64_t *)value);
    g_hash_table_destroy(per_mnem);
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "out=", 4)) out_path = g_strdup(argv[i] + 4);
    if (!out_path) {
        qemu_plugin_outs("tbcount: usage: -plugin libtbcount.so,out=FILE\n");
        return -1;
    }
    blocks = g_ptr_array_new();
    names = g_hash_table_new(g_str_hash, g_str_equal);
    qemu_plugin_register_vcpu_tb_trans_cb(id, block_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
