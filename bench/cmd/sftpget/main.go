// Command sftpget downloads one file with im1's SFTP client
// (providers/emis/sftpsite: one connection, concurrent reads) and throws
// the bytes away: the im1 side of bench/download.sh.
//
// -cpuprofile FILE writes a CPU profile of the whole run, dial included:
//
//	go tool pprof -top sftpget FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/im1dev/im1/providers/emis/sftpsite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	host := flag.String("host", "127.0.0.1", "server")
	port := flag.Int("port", 22, "port")
	user := flag.String("user", "", "user")
	key := flag.String("key", "", "client private key file")
	hostKey := flag.String("host-key", "", "pinned host key (authorized_keys form)")
	dir := flag.String("dir", "", "remote directory")
	name := flag.String("name", "", "file to fetch")
	size := flag.Int64("size", 0, "expected size")
	conc := flag.Int("concurrency", 0, "concurrent read requests (0: sftpsite's default)")
	packet := flag.Int("packet", 0, "read request size in bytes (0: sftpsite's default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (dial included) to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	c, err := sftpsite.Dial(ctx, sftpsite.Config{Host: *host, Port: *port, User: *user, AuthKeyFile: *key,
		HostKeys: []string{*hostKey}, RemoteDir: *dir, Getenv: os.Getenv, Concurrency: *conc, MaxPacket: *packet})
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	n, err := c.Fetch(ctx, *name, io.Discard, *size)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d bytes in %s\n", n, time.Since(start))
	return nil
}
