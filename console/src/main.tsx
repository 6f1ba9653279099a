import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, hasToken, onTokenChange, setToken } from "./api.js";
import { SignIn } from "./pages/SignIn.js";
import { Upstreams } from "./pages/Upstreams.js";
import { UpstreamDetail } from "./pages/UpstreamDetail.js";
import { VirtualServers } from "./pages/VirtualServers.js";
import { VirtualServerDetail } from "./pages/VirtualServerDetail.js";
import { Drift } from "./pages/Drift.js";
import { Access } from "./pages/Access.js";
import { Audit } from "./pages/Audit.js";
import { History } from "./pages/History.js";
import { revealHiddenInEveryText } from "./hiddenText.js";
import "./styles.css";

/**
 * A fragment's segment decoded, or as written when it is not valid percent-encoding: a link to
 * `#/%` threw a URIError here and the whole console, sign-in page included, rendered nothing.
 */
const decodeSegment = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

/** Routes live in the fragment (`#/upstreams/<name>`): the registry serves one page, and no name ever reaches its logs. */
function useRoute(): string[] {
  const read = () => location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeSegment);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

const NAV = [
  ["upstreams", "Upstreams"],
  ["virtual-servers", "Virtual servers"],
  ["drift", "Drift review"],
  ["access", "Consumers & keys"],
  ["audit", "Audit"],
] as const;

function Page({ route }: { route: string[] }) {
  const [section = "upstreams", name, ...rest] = route;
  switch (section) {
    case "upstreams":
      // Keyed by the name: nothing shown or typed for one object carries over to the next.
      return name ? <UpstreamDetail key={name} name={name} /> : <Upstreams />;
    case "virtual-servers":
      return name ? <VirtualServerDetail key={name} name={name} /> : <VirtualServers />;
    case "drift":
      // Keyed by the name: a link from one server's drift to another's starts on that server.
      return <Drift key={name ?? ""} initial={name} />;
    case "access":
      return <Access />;
    case "audit":
      return <Audit />;
    case "history":
      return name && rest[0] ? <History collection={name} name={rest[0]} /> : <p>Choose an object to see its history.</p>;
    default:
      return <p role="alert">No page '{section}'.</p>;
  }
}

function App() {
  const [signedIn, setSignedIn] = useState(hasToken());
  const [who, setWho] = useState<{ name: string; role: "admin" | "reader" }>();
  const route = useRoute();
  useEffect(() => onTokenChange(() => setSignedIn(hasToken())), []);
  useEffect(() => {
    if (signedIn) api<{ name: string; role: "admin" | "reader" }>("GET", "/v1/whoami").then(setWho, () => setWho(undefined));
  }, [signedIn]);
  if (!signedIn) return <SignIn />;
  const section = route[0] ?? "upstreams";
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <strong class="brand">Manifold</strong>
        <nav aria-label="sections">
          {NAV.map(([id, label]) => (
            <a href={`#/${id}`} aria-current={section === id ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">
          Signed in as <strong data-testid="who">{who?.name ?? "…"}</strong>
          {/* A reader's changes are refused by the registry (403): said up front, not discovered on saving. */}
          {who?.role === "reader" && <span data-testid="read-only"> (read only)</span>}
        </span>
        <button type="button" onClick={() => setToken(null)}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </>
  );
}

revealHiddenInEveryText();
render(<App />, document.getElementById("app")!);
