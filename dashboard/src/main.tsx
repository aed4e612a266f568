// The dashboard shell: navigation (hash routes, so the daemon serves one page), the API token
// of this tab, and the page for the current route.

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, getToken, setToken, type Options } from './api';
import { JobView } from './pages/JobView';
import { Jobs } from './pages/Jobs';
import { Metrics } from './pages/Metrics';
import { Planner } from './pages/Planner';
import './styles.css';

type Route = { page: 'plan' } | { page: 'jobs' } | { page: 'job'; id: string } | { page: 'metrics' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (parts[0] === 'jobs' && parts[1]) return { page: 'job', id: decodeURIComponent(parts[1]) };
  if (parts[0] === 'jobs') return { page: 'jobs' };
  if (parts[0] === 'metrics') return { page: 'metrics' };
  return { page: 'plan' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

function TokenField() {
  const [token, setTokenState] = useState(getToken);
  return (
    <form class="token" onSubmit={(e) => e.preventDefault()}>
      <label for="api-token">API token</label>
      <input
        id="api-token"
        type="password"
        autocomplete="off"
        placeholder="none (loopback)"
        value={token}
        onInput={(e) => {
          setTokenState(e.currentTarget.value);
          setToken(e.currentTarget.value.trim());
        }}
      />
    </form>
  );
}

function App() {
  const route = useRoute();
  const [options, setOptions] = useState<Options | null>(null);
  const [optionsError, setOptionsError] = useState('');
  useEffect(() => {
    api.options().then(setOptions, (e) => setOptionsError(e instanceof Error ? e.message : String(e)));
  }, []);
  const link = (page: Route['page'], href: string, label: string) => (
    <a href={href} aria-current={route.page === page || (page === 'jobs' && route.page === 'job') ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <header class="top">
        <h1>aiprod</h1>
        <nav aria-label="Pages">
          {link('plan', '#/', 'Planner')}
          {link('jobs', '#/jobs', 'Jobs')}
          {link('metrics', '#/metrics', 'Live metrics')}
        </nav>
        <TokenField />
      </header>
      <main>
        {optionsError && (
          <p role="alert" class="error">
            Cannot reach the daemon's API: {optionsError}
          </p>
        )}
        {route.page === 'plan' && <Planner options={options} />}
        {route.page === 'jobs' && <Jobs />}
        {route.page === 'job' && <JobView jobId={route.id} />}
        {route.page === 'metrics' && <Metrics />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
