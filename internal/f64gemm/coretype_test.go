package f64gemm

import "testing"

// TestCoreTypeFor: a generic fallback core on a CPU with AVX2/FMA (and AVX-512) is replaced;
// a recognised core, or a CPU without the units, keeps the library's choice.
func TestCoreTypeFor(t *testing.T) {
	avx512 := features{avx2: true, fma: true, avx512: true}
	avx2 := features{avx2: true, fma: true}
	for _, tc := range []struct {
		name, core string
		f          features
		want       string
	}{
		{"coretype/prescott-on-sapphire-rapids", "Prescott", avx512, "SkylakeX"},
		{"coretype/prescott-on-avx2", "Prescott", avx2, "Haswell"},
		{"coretype/sandybridge-on-avx2", "Sandybridge", avx2, "Haswell"},
		{"coretype/prescott-without-avx2", "Prescott", features{}, ""},
		{"coretype/avx2-without-fma", "Prescott", features{avx2: true}, ""},
		{"coretype/recognised-haswell", "Haswell", avx512, ""},
		{"coretype/recognised-skylakex", "SkylakeX", avx512, ""},
		{"coretype/recognised-zen", "Zen", avx2, ""},
		{"coretype/default-build", "", avx512, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := coreTypeFor(tc.core, tc.f); got != tc.want {
				t.Fatalf("coreTypeFor(%q, %+v) = %q, want %q", tc.core, tc.f, got, tc.want)
			}
		})
	}
}

// TestCoreTypeFixRespectsEnv: a set OPENBLAS_CORETYPE (the user's, or the restart's own) is
// never overridden, so the restart cannot loop; the default build never restarts.
func TestCoreTypeFixRespectsEnv(t *testing.T) {
	if got := CoreTypeFix(func(k string) string {
		if k == CoreTypeEnv {
			return "Prescott"
		}
		return ""
	}); got != "" {
		t.Fatalf("CoreTypeFix with %s set = %q, want \"\"", CoreTypeEnv, got)
	}
	if !openblas {
		if got := CoreTypeFix(func(string) string { return "" }); got != "" {
			t.Fatalf("default build: CoreTypeFix = %q, want \"\"", got)
		}
	}
}
