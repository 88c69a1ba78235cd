// Evaluates a batch of IAM requests with @cloud-copilot/iam-simulate (one process per batch).
// stdin: JSON array of {principal, action, resource, accountId, context, identityPolicies,
// resourcePolicy}; stdout: JSON array of {result, errors, identityAllows, resourceAllows, denies}
// in the same order. "result" is Allowed, ExplicitlyDenied or ImplicitlyDenied (or Error).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const sids = (statements) => (statements || []).map((s) => s.statementId ?? s.explain?.identifier ?? '?')

const results = []
for (const r of requests) {
  const simulation = {
    request: {
      principal: r.principal,
      action: r.action,
      resource: { resource: r.resource, accountId: r.accountId },
      contextVariables: r.context || {},
    },
    identityPolicies: r.identityPolicies || [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: r.resourcePolicy || undefined,
  }
  try {
    const response = await runSimulation(simulation, {})
    if (response.resultType === 'error') {
      results.push({ result: 'Error', errors: response.errors })
    } else if (response.resultType === 'single') {
      const analysis = response.result.analysis || {}
      results.push({
        result: response.overallResult,
        identity: analysis.identityAnalysis?.result,
        resource: analysis.resourceAnalysis?.result,
      })
    } else {
      results.push({ result: response.overallResult })
    }
  } catch (err) {
    results.push({ result: 'Error', errors: String(err && err.stack ? err.stack : err) })
  }
}
process.stdout.write(JSON.stringify(results))
