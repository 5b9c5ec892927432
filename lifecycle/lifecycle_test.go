package lifecycle_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// Status moves happen only in the business layer: no code outside it moves a pod, an order, an
// extension, an account or an outbox email (postgres.MovePod, MoveOrder, AuthorizeOrder,
// Pay/Refuse/ExpireExtension, ActivateAccount, MarkEmail), so no move escapes its transition
// table, nor a pod's or an order's move its audit entry.
func TestPodsMoveOnlyInTheBusinessLayer(t *testing.T) {
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "site", ".git", "lifecycle", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "postgres" {
					switch sel.Sel.Name {
					case "MovePod", "MoveOrder", "AuthorizeOrder", "PayExtension", "RefuseExtension", "ExpireExtension", "ActivateAccount", "MarkEmail":
						t.Errorf("%s calls postgres.%s: move it with lifecycle.%[2]s (or an operation of lifecycle), which audits the move", path, sel.Sel.Name)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
