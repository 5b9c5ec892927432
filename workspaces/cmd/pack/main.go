// Command pack writes the starter projects' tarballs into a folder (default
// site/public/workspaces), for `hugo deploy` to upload with the site:
//
//	go run ./workspaces/cmd/pack [dir]
package main

import (
	"fmt"
	"os"

	"gpubroker/workspaces"
)

func main() {
	dir := "site/public/workspaces"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	names, err := workspaces.WriteDir(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
	for _, n := range names {
		fmt.Println(dir + "/" + n)
	}
}
