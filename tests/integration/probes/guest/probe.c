/* A probe guest for contain's microVM stage: booted through the PVH or the Linux 64-bit
 * boot protocol (see pvh.S and linux64.S), it reports on COM1 what the VMM handed it and
 * ends the VM through the exit port (0xf4). Freestanding: no libc, no interrupts.
 *
 * Commands on the kernel command line:
 *   probe.exit=N   exit status (default 0)
 *   probe.echo     echo serial input back until a newline
 *   probe.badio    touch ports and MMIO nothing answers, report what came back
 *   probe.pit      program the PIT's channel 0 and read its counter back
 *   probe.mptable  find the MP table as Linux does and report its processors and IOAPIC
 *   probe.smp      start every other processor the MP table lists (INIT, SIPI) and count them
 *   probe.touch    write every page of RAM above 4 MiB, then read it back
 *   probe.loop     spin forever after the report (for kill)
 *   probe.flood    print forever (for a reader that never reads)
 *   probe.halt     halt with interrupts off instead of exiting
 *   probe.triple   triple-fault instead of exiting
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

#define COM1 0x3f8
static void putc_(char c) { while (!(inb(COM1 + 5) & 0x20)) {} outb(COM1, (u8)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void hex(u64 v) { puts_("0x"); int started = 0; for (int i = 60; i >= 0; i -= 4) { int d = (v >> i) & 15; if (d || started || i == 0) { putc_("0123456789abcdef"[d]); started = 1; } } }
static void dec(u64 v) { char b[24]; int n = 0; do { b[n++] = '0' + v % 10; v /= 10; } while (v); while (n) putc_(b[--n]); }
static __attribute__((noreturn)) void exit_(u8 code) { outb(0xf4, code); for (;;) __asm__ volatile("cli; hlt"); }

static const char *find(const char *s, const char *w) {
    for (; s && *s; s++) {
        const char *a = s, *b = w;
        while (*b && *a == *b) { a++; b++; }
        if (!*b && (s[-1] == ' ' || s[-1] == 0 || s == w)) return a;
    }
    return 0;
}
static const char *opt(const char *cmdline, const char *w) {
    /* a word at the start or after a space */
    for (const char *s = cmdline; s && *s; s++) {
        if (s != cmdline && s[-1] != ' ') continue;
        const char *a = s, *b = w;
        while (*b && *a == *b) { a++; b++; }
        if (!*b && (*a == 0 || *a == ' ' || *a == '=')) return a;
    }
    (void)find;
    return 0;
}

static u32 fnv1a(const u8 *p, u64 n) { u32 h = 2166136261u; for (u64 i = 0; i < n; i++) { h ^= p[i]; h *= 16777619u; } return h; }

struct e820 { u64 addr, size; u32 type; } __attribute__((packed));
struct hvm_start_info { u32 magic, version, flags, nr_modules; u64 modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr; u32 memmap_entries, reserved; };
struct hvm_modlist_entry { u64 paddr, size, cmdline_paddr, reserved; };
struct hvm_memmap_entry { u64 addr, size; u32 type, reserved; };

static u64 ram, ram_end;
static void e820_line(u64 addr, u64 size, u32 type) {
    puts_("probe: e820 "); hex(addr); putc_(' '); hex(size); putc_(' '); dec(type); putc_('\n');
    if (type == 1) { ram += size; if (addr + size > ram_end) ram_end = addr + size; }
}

static void initramfs(u64 addr, u64 size) {
    if (!size) { puts_("probe: initramfs none\n"); return; }
    puts_("probe: initramfs addr="); hex(addr); puts_(" size="); dec(size);
    puts_(" fnv="); hex(fnv1a((const u8 *)addr, size)); putc_('\n');
}

static u8 sum(const u8 *p, u32 n) { u8 s = 0; while (n--) s += *p++; return s; }

/* The MP floating pointer in the last KiB of base memory or the BIOS area, as Linux scans;
 * returns the number of processors it lists. */
static u32 mptable(void) {
    const u8 *fp = 0;
    for (u64 a = 0x9fc00; a < 0xa0000 && !fp; a += 16)
        if (*(const u32 *)a == 0x5f504d5f) fp = (const u8 *)a;
    for (u64 a = 0xf0000; a < 0x100000 && !fp; a += 16)
        if (*(const u32 *)a == 0x5f504d5f) fp = (const u8 *)a;
    if (!fp) { puts_("probe: mptable none\n"); return 0; }
    const u8 *cfg = (const u8 *)(u64)*(const u32 *)(fp + 4);
    u16 len = *(const u16 *)(cfg + 4), count = *(const u16 *)(cfg + 34);
    int ok = sum(fp, 16) == 0 && *(const u32 *)cfg == 0x504d4350 && sum(cfg, len) == 0;
    u32 cpus = 0, bsp = 0, ioapic = 0, irqs = 0;
    const u8 *e = cfg + 44;
    for (u16 i = 0; i < count && e < cfg + len; i++) {
        if (e[0] == 0) { cpus++; if (e[3] & 2) bsp = e[1] + 1; e += 20; continue; }
        if (e[0] == 2) ioapic = *(const u32 *)(e + 4);
        if (e[0] == 3) irqs++;
        e += 8;
    }
    puts_("probe: mptable cpus="); dec(cpus); puts_(" bsp="); dec(bsp ? bsp - 1 : 99);
    puts_(" ioapic="); hex(ioapic); puts_(" irqs="); dec(irqs);
    puts_(ok ? " checksums=ok\n" : " checksums=bad\n");
    return cpus;
}

/* Map the local APIC (0xfee00000, in the 4th GiB) with one uncached 2 MiB page. */
static u64 apic_pd[512] __attribute__((aligned(4096)));
static void map_lapic(void) {
    u64 cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    u64 *pml4 = (u64 *)(cr3 & ~0xfffUL);
    u64 *pdpt = (u64 *)(pml4[0] & ~0xfffUL);
    apic_pd[(0xfee00000UL - 0xc0000000UL) >> 21] = 0xfee00000UL | 0x9b; /* P RW PWT PCD PS */
    pdpt[3] = (u64)apic_pd | 3;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}
static void lapic_w(u32 reg, u32 v) { *(volatile u32 *)(0xfee00000UL + reg) = v; }
static void spin(u64 n) { for (volatile u64 i = 0; i < n; i++) {} }

/* Each application processor starts in real mode at 0x3000 (SIPI vector 3), counts itself in
 * the byte at 0x2ff0 and halts: lock incb [0x2ff0]; cli; hlt; jmp back to hlt. */
static void smp(u32 cpus) {
    static const u8 tramp[] = { 0xf0, 0xfe, 0x06, 0xf0, 0x2f, 0xfa, 0xf4, 0xeb, 0xfd };
    volatile u8 *count = (volatile u8 *)0x2ff0;
    if (cpus < 2) { puts_("probe: smp no other processor\n"); return; }
    for (u32 i = 0; i < sizeof tramp; i++) ((volatile u8 *)0x3000)[i] = tramp[i];
    *count = 0;
    map_lapic();
    lapic_w(0xf0, 0x1ff); /* software-enable the local APIC */
    for (u32 id = 1; id < cpus; id++) {
        lapic_w(0x310, id << 24); lapic_w(0x300, 0x4500); /* INIT */
        spin(10000);
        for (int k = 0; k < 2; k++) { lapic_w(0x310, id << 24); lapic_w(0x300, 0x4603); spin(1000); }
    }
    for (u64 i = 0; i < 300000000UL && *count < cpus - 1; i++) {}
    puts_("probe: smp started="); dec(*count); puts_(" of "); dec(cpus - 1); putc_('\n');
}

void probe_main(u64 info, int kind) {
    const char *cmdline = 0;
    if (kind == 1) {
        const struct hvm_start_info *si = (const void *)info;
        puts_("probe: boot=pvh\n");
        if (si->magic != 0x336ec578) { puts_("probe: bad start info magic "); hex(si->magic); putc_('\n'); exit_(90); }
        puts_("probe: start_info version="); dec(si->version); puts_(" modules="); dec(si->nr_modules); putc_('\n');
        cmdline = (const char *)si->cmdline_paddr;
        const struct hvm_memmap_entry *m = (const void *)si->memmap_paddr;
        for (u32 i = 0; i < si->memmap_entries; i++) e820_line(m[i].addr, m[i].size, m[i].type);
        if (si->nr_modules) {
            const struct hvm_modlist_entry *mod = (const void *)si->modlist_paddr;
            initramfs(mod->paddr, mod->size);
        } else initramfs(0, 0);
    } else {
        const u8 *zp = (const u8 *)info;
        puts_("probe: boot=linux64\n");
        if (*(const u32 *)(zp + 0x202) != 0x53726448) { puts_("probe: bad zero page\n"); exit_(91); }
        puts_("probe: boot_protocol="); hex(*(const u16 *)(zp + 0x206));
        puts_(" loader="); hex(zp[0x210]); putc_('\n');
        cmdline = (const char *)(*(const u32 *)(zp + 0x228) | ((u64)*(const u32 *)(zp + 0xc8) << 32));
        const struct e820 *m = (const void *)(zp + 0x2d0);
        for (u32 i = 0; i < zp[0x1e8]; i++) e820_line(m[i].addr, m[i].size, m[i].type);
        u64 rd = *(const u32 *)(zp + 0x218) | ((u64)*(const u32 *)(zp + 0xc0) << 32);
        u64 rs = *(const u32 *)(zp + 0x21c) | ((u64)*(const u32 *)(zp + 0xc4) << 32);
        initramfs(rd, rs);
    }
    puts_("probe: ram="); dec(ram); putc_('\n');
    puts_("probe: cmdline="); puts_(cmdline ? cmdline : "(none)"); putc_('\n');

    if (opt(cmdline, "probe.badio")) {
        outb(0x80, 1); outb(0x3000 & 0xff, 2);
        puts_("probe: port 0x60 reads "); hex(inb(0x60)); putc_('\n');
        volatile u32 *mmio = (volatile u32 *)0x30000000;  /* inside the 1 GiB map, beyond RAM */
        *mmio = 0xdeadbeef;
        puts_("probe: mmio reads "); hex(*mmio); putc_('\n');
    }
    if (opt(cmdline, "probe.pit")) {
        /* Channel 0, low then high byte, mode 2, count 0x1234; then latch and read it. A PIT
           counts down from there; where there is none the port reads all ones. */
        outb(0x43, 0x34); outb(0x40, 0x34); outb(0x40, 0x12);
        outb(0x43, 0x00);
        u16 lo = inb(0x40), hi = inb(0x40);
        puts_("probe: pit counter="); hex((u64)(hi << 8 | lo)); putc_('\n');
    }
    if (opt(cmdline, "probe.mptable") || opt(cmdline, "probe.smp")) {
        u32 cpus = mptable();
        if (opt(cmdline, "probe.smp")) smp(cpus);
    }
    if (opt(cmdline, "probe.touch")) {
        u64 pages = 0, bad = 0;
        for (u64 a = 0x400000; a + 4096 <= ram_end; a += 4096, pages++) *(volatile u64 *)a = a ^ 0x5a5a5a5a;
        for (u64 a = 0x400000; a + 4096 <= ram_end; a += 4096) bad += *(volatile u64 *)a != (a ^ 0x5a5a5a5a);
        puts_("probe: touched "); dec(pages); puts_(" pages, "); dec(bad); puts_(" bad\n");
    }
    if (opt(cmdline, "probe.echo")) {
        puts_("probe: echo ready\n");
        for (;;) {
            while (!(inb(COM1 + 5) & 1)) {}
            char c = (char)inb(COM1);
            putc_(c);
            if (c == '\n') break;
        }
        puts_("probe: echoed\n");
    }
    if (opt(cmdline, "probe.halt")) { puts_("probe: halting\n"); for (;;) __asm__ volatile("cli; hlt"); }
    if (opt(cmdline, "probe.triple")) {
        puts_("probe: triple fault\n");
        struct { u16 limit; u64 base; } __attribute__((packed)) idt = {0, 0};
        __asm__ volatile("lidt %0; int3" : : "m"(idt));
    }
    if (opt(cmdline, "probe.flood")) for (;;) puts_("probe: flood flood flood flood flood flood flood\n");
    if (opt(cmdline, "probe.loop")) { puts_("probe: looping\n"); for (;;) {} }
    u64 code = 0;
    const char *e = opt(cmdline, "probe.exit");
    if (e && *e == '=') for (e++; *e >= '0' && *e <= '9'; e++) code = code * 10 + (*e - '0');
    puts_("probe: done\n");
    exit_((u8)code);
}
