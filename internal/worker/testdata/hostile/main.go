package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/worker"
)

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	out := os.Stdout
	if strings.HasPrefix(mode, "lanes-") {
		os.Exit(serveLanes(mode))
	}
	switch mode {
	case "no-hello":
		io.Copy(io.Discard, os.Stdin) // says nothing until killed
		return
	case "wrong-version":
		worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: worker.TypeHello, Proto: worker.Proto, Version: 99}})
		io.Copy(io.Discard, os.Stdin)
		return
	case "huge-header":
		out.Write([]byte{0xff, 0xff, 0xff, 0xff})
		io.Copy(io.Discard, os.Stdin)
		return
	case "huge-hello-payload":
		raw(out, worker.Header{Type: worker.TypeHello, Proto: worker.Proto, Version: worker.Version}, 1<<34, nil)
		io.Copy(io.Discard, os.Stdin)
		return
	}
	// forget-*: a hello that declares forget, and a forget request answered per mode (run
	// requests get correct results); any other mode never declared it, so a forget request is
	// a client bug: exit 6.
	forget, declares := strings.CutPrefix(mode, "forget-")
	worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: worker.TypeHello, Proto: worker.Proto, Version: worker.Version, Backend: "hostile-" + mode, Forget: declares}})
	for {
		f, err := worker.ReadFrame(os.Stdin)
		if err != nil {
			return
		}
		if f.Header.Type == worker.TypeBye {
			return
		}
		if f.Header.Type == worker.TypeForget {
			if !declares {
				fmt.Fprintln(os.Stderr, "hostile: a forget request to a worker that did not declare forget")
				os.Exit(6)
			}
			answerForget(out, forget, f.Header.ID)
			continue
		}
		if declares {
			mode = "ok"
		}
		c, _, _, err := worker.DecodeRequest(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostile:", err)
			os.Exit(4)
		}
		id := f.Header.ID
		zero := func(n int) []float32 { return make([]float32, n) }
		res := &gpu.Result{Y: zero(c.LenX()), DX: zero(c.LenX()), DW1: zero(c.LenW1()), DW2: zero(c.LenW2()), DRW: zero(c.S())}
		if c.Bias {
			res.DB1, res.DB2 = zero(c.LenB1()), zero(c.LenB2())
		}
		good := worker.EncodeResult(id, c.Config, res)
		switch mode {
		case "ok":
			worker.WriteFrame(out, good)
		case "huge-payload": // declares 2^34 bytes for a small result, sends the real ones
			raw(out, good.Header, 1<<34, good.Payload)
		case "offset-overflow":
			good.Header.Tensors[0].Offset = 1<<63 - 248
			good.Header.Tensors[0].Bytes = 256
			worker.WriteFrame(out, good)
		case "offset-range":
			good.Header.Tensors[0].Offset = int64(len(good.Payload)) - 1
			worker.WriteFrame(out, good)
		case "negative-offset":
			good.Header.Tensors[0].Offset = -8
			worker.WriteFrame(out, good)
		case "wrong-dtype":
			for i := range good.Header.Tensors {
				good.Header.Tensors[i].DType = "i64"
			}
			worker.WriteFrame(out, good)
		case "wrong-shape":
			good.Header.Tensors[0].Shape = []int{3, 1000}
			worker.WriteFrame(out, good)
		case "wrong-size":
			good.Header.Tensors[0].Bytes -= 2
			worker.WriteFrame(out, good)
		case "wrong-id":
			good.Header.ID = id + 7
			worker.WriteFrame(out, good)
		case "wrong-type":
			good.Header.Type = "party"
			worker.WriteFrame(out, good)
		case "garbage":
			out.Write([]byte(strings.Repeat("\x00garbage\xff", 100)))
		case "hang-mid-frame":
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], 100)
			out.Write(b[:])
			out.Write([]byte(`{"type":"res`))
			time.Sleep(time.Hour)
		case "early-exit":
			os.Exit(0)
		case "stderr-flood": // 64 MiB of stderr, then a correct answer
			line := []byte(strings.Repeat("flood ", 1<<10) + "\n")
			for n := 0; n < 64<<20; n += len(line) {
				os.Stderr.Write(line)
			}
			worker.WriteFrame(out, good)
		default:
			fmt.Fprintf(os.Stderr, "hostile: unknown mode %q\n", mode)
			os.Exit(5)
		}
	}
}

// raw writes a frame whose payload length field says declared while payload bytes follow.
func raw(w io.Writer, h worker.Header, declared uint64, payload []byte) {
	hb, _ := json.Marshal(&h)
	var n [8]byte
	binary.LittleEndian.PutUint32(n[:4], uint32(len(hb)))
	w.Write(n[:4])
	w.Write(hb)
	binary.LittleEndian.PutUint64(n[:], declared)
	w.Write(n[:])
	w.Write(payload)
}

// answerForget answers forget request id per mode.
func answerForget(out io.Writer, mode string, id uint64) {
	switch mode {
	case "ok":
		worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: worker.TypeForgot, ID: id}})
	case "garbage":
		out.Write([]byte(strings.Repeat("\x00garbage\xff", 100)))
	case "error":
		worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: worker.TypeError, ID: id, Kind: worker.KindInternal, Detail: "cannot forget"}})
	case "wrong-id":
		worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: worker.TypeForgot, ID: id + 7}})
	case "wrong-type":
		worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: "party", ID: id}})
	case "payload": // a forgot frame with a tensor and its 8 bytes
		worker.WriteFrame(out, &worker.Frame{Header: worker.Header{Type: worker.TypeForgot, ID: id,
			Tensors: []worker.TensorHeader{{Name: "y", DType: "fp32", Shape: []int{2}, Bytes: 8}}}, Payload: make([]byte, 8)})
	case "exit":
		os.Exit(0)
	case "hang":
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "hostile: unknown forget mode %q\n", mode)
		os.Exit(5)
	}
}
