// Command cniconvert converts a CNI result with libcni's own code, so tests can
// compare wasmcni's conversions with the reference field by field.
//
//	cniconvert [-exec CONF_VERSION | -prev CONF_VERSION] TO_VERSION < result.json
//
// It reads a result the way libcni does, then prints
// result.GetAsVersion(TO_VERSION) as libcni marshals it (one line of JSON).
// How the result is read:
//
//	(default)  create.CreateFromBytes: the version is the result's cniVersion
//	           ("0.1.0" when absent), as libcni reads its cached results;
//	-exec V    invoke.ExecPluginWithResult: a plugin's stdout for a config at
//	           cniVersion V (an absent or empty cniVersion becomes V);
//	-prev V    version.ParsePrevResult: the prevResult of a config at V, as
//	           every reference plugin parses it.
//
// TO_VERSION "-" prints the result as read, without converting.
// When libcni refuses, the error goes to stderr and the exit code is 1;
// a panic inside libcni is reported the same way with exit code 2.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"
)

// stdoutExec is an invoke.Exec whose "plugin" printed the given bytes.
type stdoutExec struct {
	version.PluginDecoder
	out []byte
}

func (e *stdoutExec) ExecPlugin(context.Context, string, []byte, []string) ([]byte, error) {
	return e.out, nil
}

func (e *stdoutExec) FindInPath(plugin string, _ []string) (string, error) {
	return plugin, nil
}

func read(in []byte, execVer, prevVer string) (types.Result, error) {
	switch {
	case execVer != "":
		conf := []byte(fmt.Sprintf(`{"cniVersion":%q}`, execVer))
		return invoke.ExecPluginWithResult(context.Background(), "plugin", conf, &invoke.Args{Command: "ADD"}, &stdoutExec{out: in})
	case prevVer != "":
		conf := map[string]interface{}{"cniVersion": prevVer, "name": "n", "type": "t"}
		var prev interface{}
		if err := json.Unmarshal(in, &prev); err != nil {
			return nil, err
		}
		conf["prevResult"] = prev
		raw, err := json.Marshal(conf)
		if err != nil {
			return nil, err
		}
		var pc types.PluginConf
		if err := json.Unmarshal(raw, &pc); err != nil {
			return nil, err
		}
		if err := version.ParsePrevResult(&pc); err != nil {
			return nil, err
		}
		if pc.PrevResult == nil {
			return nil, fmt.Errorf("no prevResult")
		}
		return pc.PrevResult, nil
	default:
		return create.CreateFromBytes(in)
	}
}

func run(to, execVer, prevVer string) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("libcni panicked: %v", p)
			os.Stderr.WriteString("cniconvert: " + err.Error() + "\n")
			os.Exit(2)
		}
	}()
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, err
	}
	r, err := read(in, execVer, prevVer)
	if err != nil {
		return nil, err
	}
	if to != "-" {
		if r, err = r.GetAsVersion(to); err != nil {
			return nil, err
		}
	}
	return json.Marshal(r)
}

func main() {
	execVer := flag.String("exec", "", "read stdin as a plugin's output for a config at this cniVersion")
	prevVer := flag.String("prev", "", "read stdin as the prevResult of a config at this cniVersion")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cniconvert [-exec V | -prev V] TO_VERSION < result.json")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || (*execVer != "" && *prevVer != "") {
		flag.Usage()
		os.Exit(64)
	}
	out, err := run(flag.Arg(0), *execVer, *prevVer)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cniconvert: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(out, '\n'))
}
