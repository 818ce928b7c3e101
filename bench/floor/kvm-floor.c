/*
 * kvm-floor: the least a KVM monitor does before its guest runs, as a yardstick
 * for the bench.
 *
 *   kvm-floor
 *
 * Opens /dev/kvm, creates a VM with 128 MiB of guest memory (one slot) and one vCPU
 * in real mode, and runs a guest of five instructions at 0x1000: three writes to
 * port 0x3f8, then hlt. On each write it prints the next marker line of the bootlab
 * protocol (@@bootlab init-start, exec, done) to stdout, where the harness stamps
 * it; on hlt it exits 0. Nothing else: no CPUID table (a Linux guest needs one), no
 * irqchip, no devices, no kernel to load, no error reporting beyond a message. It is
 * static and written against glibc, like bootlab itself, so the gap between the two
 * is what bootlab does on top, not how its process starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM (128UL << 20)
#define CODE_AT 0x1000
/* Three pages KVM needs below 4 GiB for real mode on Intel hosts without
 * unrestricted guest (the address bootlab's monitor uses too). */
#define TSS_AT 0xfffbd000UL

static void die(const char *what)
{
	perror(what);
	exit(1);
}

int main(void)
{
	/* mov dx, 0x3f8; out dx, al (x3); hlt */
	static const unsigned char code[] = {0xba, 0xf8, 0x03, 0xee, 0xee, 0xee, 0xf4};
	static const char *markers[] = {"@@bootlab init-start\n", "@@bootlab exec\n",
					"@@bootlab done\n"};
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	unsigned char *mem;
	int kvm, vm, vcpu, run_size, writes = 0;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("kvm-floor: /dev/kvm");
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != 12) {
		fprintf(stderr, "kvm-floor: KVM API version is not 12\n");
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("kvm-floor: KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_AT) < 0)
		die("kvm-floor: KVM_SET_TSS_ADDR");
	mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("kvm-floor: mmap");
	memcpy(mem + CODE_AT, code, sizeof(code));
	memset(&region, 0, sizeof(region));
	region.memory_size = GUEST_MEM;
	region.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("kvm-floor: KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("kvm-floor: KVM_CREATE_VCPU");
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		die("kvm-floor: KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("kvm-floor: mmap kvm_run");
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("kvm-floor: KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("kvm-floor: KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_AT;
	regs.rflags = 2;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("kvm-floor: KVM_SET_REGS");
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("kvm-floor: KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.direction == KVM_EXIT_IO_OUT && writes < 3) {
				fputs(markers[writes++], stdout);
				fflush(stdout);
			}
			break;
		case KVM_EXIT_HLT:
			if (writes == 3)
				return 0;
			fprintf(stderr, "kvm-floor: the guest halted after %d writes\n", writes);
			return 1;
		default:
			fprintf(stderr, "kvm-floor: unexpected exit reason %u\n",
				run->exit_reason);
			return 1;
		}
	}
}
