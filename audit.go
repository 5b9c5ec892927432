package gpubroker

// AuditAction names what happened in an audit entry (audit_events.action): the trail of every
// order's story, the ops console and the alerts that count them read these names, so they never
// change once written. A pod's status moves name theirs in the transition table (pod.go).
type AuditAction string

// Audit actions, by what they are about.
const (
	ActionAccountCreated AuditAction = "account.created"
	// ActionAccountDeleted: the account's personal data was removed on request (no personal
	// data in its detail).
	ActionAccountDeleted AuditAction = "account.deleted"

	ActionOrderAttached   AuditAction = "order.attached"
	ActionOrderAuthorized AuditAction = "order.authorized"
	ActionOrderCaptured   AuditAction = "order.captured"
	ActionOrderCreated    AuditAction = "order.created"
	ActionOrderExpired    AuditAction = "order.expired"
	ActionOrderRefunded   AuditAction = "order.refunded"
	ActionOrderReleased   AuditAction = "order.released"

	ActionPodBootAbandoned      AuditAction = "pod.boot_abandoned"
	ActionPodCaptureFailed      AuditAction = "pod.capture_failed"
	ActionPodDeployRequested    AuditAction = "pod.deploy_requested"
	ActionPodDied               AuditAction = "pod.died"
	ActionPodExtended           AuditAction = "pod.extended"
	ActionPodExtensionExpired   AuditAction = "pod.extension_expired"
	ActionPodExtensionOverLimit AuditAction = "pod.extension_over_limit"
	ActionPodExtensionPaidLate  AuditAction = "pod.extension_paid_late"
	ActionPodExtensionRequested AuditAction = "pod.extension_requested"
	ActionPodFailed             AuditAction = "pod.failed"
	ActionPodHoldReleased       AuditAction = "pod.hold_released"
	ActionPodLaunched           AuditAction = "pod.launched"
	ActionPodOutcomeNoted       AuditAction = "pod.outcome_noted"
	ActionPodProvisioning       AuditAction = "pod.provisioning"
	ActionPodRunning            AuditAction = "pod.running"
	ActionPodTerminateRequested AuditAction = "pod.terminate_requested"
	ActionPodTerminated         AuditAction = "pod.terminated"

	ActionRefundFailed AuditAction = "refund.failed"

	// A job about an order or a pod finished (jobs.Hooks): completed, or failed for good
	// (detail.state discarded or cancelled), with its kind, id, attempt and last error.
	ActionJobCompleted AuditAction = "job.completed"
	ActionJobFailed    AuditAction = "job.failed"

	ActionEmailSandboxRejected AuditAction = "email.sandbox_rejected"
	ActionEmailSuppressed      AuditAction = "email.suppressed"

	ActionProviderConfigError AuditAction = "provider.config_error"
	ActionProviderRefused     AuditAction = "provider.refused"

	ActionReconcileDrift             AuditAction = "reconcile.drift"
	ActionReconcileOrphanInstance    AuditAction = "reconcile.orphan_instance"
	ActionReconcileOverduePod        AuditAction = "reconcile.overdue_pod"
	ActionReconcileProvisionRequeued AuditAction = "reconcile.provision_requeued"
	ActionReconcileRefundQueued      AuditAction = "reconcile.refund_queued"

	ActionSshKeyAdded   AuditAction = "ssh_key.added"
	ActionSshKeyDeleted AuditAction = "ssh_key.deleted"

	ActionSshKeysDropped AuditAction = "ssh_keys.dropped"

	ActionLambdaFirewallFailed AuditAction = "lambda.firewall_failed"
	ActionLambdaFirewallOpened AuditAction = "lambda.firewall_opened"

	ActionOpsAuthFailed     AuditAction = "ops.auth_failed"
	ActionOpsRiveruiAction  AuditAction = "ops.riverui_action"
	ActionOpsSearchedOrders AuditAction = "ops.searched_orders"
	ActionOpsViewedConsole  AuditAction = "ops.viewed_console"
	ActionOpsViewedFunnel   AuditAction = "ops.viewed_funnel"
	ActionOpsViewedOrder    AuditAction = "ops.viewed_order"
)

// AccountSignInAction is the action of a one-time link sent for purpose (TokenActivation,
// TokenLogin): account.activation, account.login.
func AccountSignInAction(purpose string) AuditAction { return AuditAction("account." + purpose) }

// RefundedAction is the action of a pod's unused minutes refunded for reason:
// pod.early_stop_refunded, pod.pod_died_refunded.
func RefundedAction(reason RefundReason) AuditAction {
	return AuditAction("pod." + string(reason) + "_refunded")
}
