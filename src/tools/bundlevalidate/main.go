// Command bundlevalidate runs operator-framework/api's bundle validators (those operator-sdk's
// `bundle validate --select-optional suite=operatorframework` is built on) over a bundle directory.
// The operator-sdk CLI itself is not served by the module proxy here; its validation library is.
package main

import (
	"fmt"
	"os"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bundlevalidate BUNDLE_DIR")
		os.Exit(2)
	}
	bundle, err := manifests.GetBundleFromDir(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot load the bundle:", err)
		os.Exit(1)
	}
	validators := append(interfaces.Validators{}, validation.DefaultBundleValidators...)
	validators = append(validators, validation.OperatorHubValidator, validation.ObjectValidator)
	errors := 0
	for _, result := range validators.Validate(bundle, bundle.CSV, bundle.V1CRDs) {
		for _, e := range result.Errors {
			fmt.Printf("ERROR %s: %s\n", result.Name, e)
			errors++
		}
		for _, w := range result.Warnings {
			fmt.Printf("WARN  %s: %s\n", result.Name, w)
		}
	}
	if errors > 0 {
		os.Exit(1)
	}
	fmt.Printf("bundle %s (%s): valid\n", os.Args[1], bundle.CSV.GetName())
}
