package controlplane

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api"
	cpv1 "github.com/fleetpulse/fleetpulse/api/clusterinventory/v1alpha1"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Scheme knows every type the hub's controllers read and write:
// Kubernetes' built-in types, CRDs, fleetpulse.io and ClusterProfile.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	_ = fleetv1.AddToScheme(s)
	_ = cpv1.AddToScheme(s)
	return s
}

// InstallAt is Install over a client for restCfg.
func InstallAt(ctx context.Context, restCfg *rest.Config, namespace string) error {
	c, err := client.New(restCfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("control-plane client: %w", err)
	}
	return Install(ctx, c, namespace)
}

// Install applies the API's CRDs, waits until they are served, and creates
// the hub's namespace (bootstrap tokens, ClusterProfiles). It is
// idempotent, and replicas may run it at the same time.
func Install(ctx context.Context, c client.Client, namespace string) error {
	crds, err := api.CRDs()
	if err != nil {
		return err
	}
	for _, crd := range crds {
		// Replicas starting together install at once: the one that loses a
		// create or an update to another's reads the CRD again and applies
		// it over that one.
		lostRace := func(err error) bool { return apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) }
		if err := retry.OnError(retry.DefaultRetry, lostRace, func() error { return applyCRD(ctx, c, crd.DeepCopy()) }); err != nil {
			return err
		}
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, got); err != nil {
				return false, nil
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", crd.Name, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return nil
}

// applyCRD creates crd, or sets the existing one's spec to crd's.
func applyCRD(ctx context.Context, c client.Client, crd *apiextensionsv1.CustomResourceDefinition) error {
	existing := &apiextensionsv1.CustomResourceDefinition{}
	err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, crd); err != nil {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get CRD %s: %w", crd.Name, err)
	default:
		existing.Spec = crd.Spec
		if err := c.Update(ctx, existing); err != nil {
			return fmt.Errorf("update CRD %s: %w", crd.Name, err)
		}
	}
	return nil
}
