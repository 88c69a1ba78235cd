// Evaluates batches of IAM requests with @cloud-copilot/iam-simulate, one process for many
// batches (a fresh process per batch spent most of its time starting and warming up).
// stdin: one batch per line, a JSON array of {principal, action, resource, accountId,
// context, identityPolicies, resourcePolicy}; stdout: one line per batch, a JSON array of
// {result, identity, resource, errors} in the same order. "result" is Allowed,
// ExplicitlyDenied or ImplicitlyDenied (or Error). The process ends when stdin closes.
import { createInterface } from 'node:readline'
import { runSimulation } from '@cloud-copilot/iam-simulate'

async function evaluate(r) {
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
      return { result: 'Error', errors: response.errors }
    }
    if (response.resultType === 'single') {
      const analysis = response.result.analysis || {}
      return {
        result: response.overallResult,
        identity: analysis.identityAnalysis?.result,
        resource: analysis.resourceAnalysis?.result,
      }
    }
    return { result: response.overallResult }
  } catch (err) {
    return { result: 'Error', errors: String(err && err.stack ? err.stack : err) }
  }
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue
  const results = []
  for (const request of JSON.parse(line)) results.push(await evaluate(request))
  process.stdout.write(JSON.stringify(results) + '\n')
}
