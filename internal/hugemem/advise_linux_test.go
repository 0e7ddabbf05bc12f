//go:build linux && !nohugemem

package hugemem

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestAdvised: on a kernel with transparent huge pages in madvise or always mode, a large
// slice's mapping is marked for huge pages (smaps "VmFlags" hg) once Float32s advised it.
func TestAdvised(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !strings.Contains(string(mode), "[madvise]") && !strings.Contains(string(mode), "[always]") {
		t.Skipf("transparent huge pages not in madvise or always mode (%q, %v)", mode, err)
	}
	v := Float32s(Threshold) // 4 × Threshold bytes
	lo, hi := interior(uintptr(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	flags, err := vmFlags(lo)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("mapping of [%#x, %#x) has VmFlags %q, want hg (MADV_HUGEPAGE)", lo, hi, flags)
	}
}

// vmFlags returns the VmFlags line of the mapping of /proc/self/smaps containing addr.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var a, b uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &a, &b); n == 2 {
			in = addr >= a && addr < b
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:")), nil
		}
	}
	return "", fmt.Errorf("no mapping contains %#x", addr)
}
