/* probe-resume: can a monitor step over an instruction that the emulated KVM
 * (kvm_pvm) rejects and continue the guest?  Real-mode guest at 0x1000:
 *     fwait            ; 9b      (not in KVM's emulator table)
 *     mov al,'A'; mov dx,0x3f8; out dx,al
 *     hlt
 * On KVM_EXIT_INTERNAL_ERROR we print the suberror and data, advance RIP by the
 * rejected instruction's length (1 for fwait) with KVM_SET_REGS, and KVM_RUN
 * again. Success = an I/O exit on 0x3f8 with 'A' and then HLT. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
	const unsigned char code[] = {0x9b, 0xb0, 'A', 0xba, 0xf8, 0x03, 0xee, 0xf4};
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) { perror("/dev/kvm"); return 1; }
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	unsigned char *mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memcpy(mem + 0x1000, code, sizeof code);
	struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = 0x10000, .userspace_addr = (unsigned long)mem};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) { perror("SET_USER_MEMORY_REGION"); return 1; }
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	int sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs s; ioctl(vcpu, KVM_GET_SREGS, &s);
	s.cs.base = 0; s.cs.selector = 0; ioctl(vcpu, KVM_SET_SREGS, &s);
	struct kvm_regs g = {.rip = 0x1000, .rflags = 2};
	ioctl(vcpu, KVM_SET_REGS, &g);
	for (int i = 0; i < 10; i++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) { perror("KVM_RUN"); return 1; }
		switch (run->exit_reason) {
		case KVM_EXIT_INTERNAL_ERROR:
			ioctl(vcpu, KVM_GET_REGS, &g);
			printf("exit INTERNAL_ERROR suberror=%u ndata=%u rip=%#llx", run->internal.suberror, run->internal.ndata, g.rip);
			for (unsigned j = 0; j < run->internal.ndata && j < 4; j++) printf(" data[%u]=%#llx", j, run->internal.data[j]);
			printf("\n  -> monitor skips the 1-byte fwait: rip += 1, KVM_SET_REGS, KVM_RUN\n");
			g.rip += 1;
			if (ioctl(vcpu, KVM_SET_REGS, &g) < 0) { perror("KVM_SET_REGS"); return 1; }
			break;
		case KVM_EXIT_IO:
			printf("exit IO port=%#x byte='%c'\n", run->io.port, *((char *)run + run->io.data_offset));
			break;
		case KVM_EXIT_HLT:
			ioctl(vcpu, KVM_GET_REGS, &g);
			printf("exit HLT rip=%#llx: RESUMED OK\n", g.rip);
			return 0;
		default:
			printf("exit reason %u\n", run->exit_reason);
			return 2;
		}
	}
	return 3;
}
