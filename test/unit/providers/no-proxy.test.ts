import { NoProxyList } from '../../../src/providers/no-proxy';

/** Whether `NO_PROXY=value` sends a request to `url` direct. */
const direct = (value: string, url: string): boolean =>
  new NoProxyList(value).matches(new URL(url));

describe('NO_PROXY matching (curl rules)', () => {
  it('matches nothing when empty or blank', () => {
    expect(direct('', 'http://a.example/')).toBe(false);
    expect(direct(' , ,', 'http://a.example/')).toBe(false);
    expect(new NoProxyList(' , ,').ignored).toEqual([]);
  });

  it('* alone or as an entry exempts every host, names and addresses alike', () => {
    for (const url of ['http://a.example/', 'https://10.1.2.3:8443/', 'http://[::1]/']) {
      expect(direct('*', url)).toBe(true);
      expect(direct('internal.example, *', url)).toBe(true);
    }
  });

  it.each([
    ['corp.example', 'https://corp.example/', true],
    ['corp.example', 'https://api.corp.example/', true],
    ['corp.example', 'https://a.b.corp.example/', true],
    ['corp.example', 'https://notcorp.example/', false],
    ['corp.example', 'https://corp.example.org/', false],
    ['.corp.example', 'https://corp.example/', true],
    ['.corp.example', 'https://api.corp.example/', true],
    ['*.corp.example', 'https://api.corp.example/', true],
    ['corp.example.', 'https://api.corp.example/', true],
    ['CORP.Example', 'https://Api.corp.EXAMPLE/', true],
    ['corp.example', 'https://api.corp.example./', true],
    ['.svc', 'http://dyn.gateway.svc:8080/', true],
    ['svc', 'http://svc-proxy.example/', false],
    ['bücher.example', 'https://www.xn--bcher-kva.example/', true],
    ['localhost', 'http://127.0.0.1/', false],
  ])('host name %s against %s: %s', (value, url, expected) => {
    expect(direct(value, url)).toBe(expected);
  });

  it.each([
    ['10.0.0.5', 'http://10.0.0.5:44000/', true],
    ['10.0.0.5', 'http://10.0.0.6/', false],
    ['10.0.0.0/8', 'http://10.20.0.5:44000/', true],
    ['10.0.0.0/8', 'http://11.0.0.1/', false],
    ['10.1.2.3/8', 'http://10.200.0.1/', true],
    ['192.168.0.0/16', 'https://192.168.255.255/', true],
    ['192.168.0.0/24', 'https://192.168.1.1/', false],
    ['127.0.0.1/32', 'http://127.0.0.1/', true],
    ['127.0.0.1/32', 'http://127.0.0.2/', false],
    ['0.0.0.0/0', 'http://203.0.113.9/', true],
    ['10.1', 'http://10.0.0.1/', true],
    ['10.0.0.0/8', 'http://0x0a.1/', true],
  ])('IPv4 %s against %s: %s', (value, url, expected) => {
    expect(direct(value, url)).toBe(expected);
  });

  it.each([
    ['::1', 'http://[::1]:8080/', true],
    ['[::1]', 'http://[::1]/', true],
    ['0:0:0:0:0:0:0:1', 'http://[::1]/', true],
    ['::1', 'http://[::2]/', false],
    ['fd00::/8', 'https://[fd12:3456::1]/', true],
    ['fd00::/8', 'https://[fe80::1]/', false],
    ['FE80::/10', 'https://[febf::1]/', true],
    ['2001:db8::/32', 'http://[2001:db8:ffff::1]/', true],
    ['2001:db8::/32', 'http://[2001:db9::1]/', false],
  ])('IPv6 %s against %s: %s', (value, url, expected) => {
    expect(direct(value, url)).toBe(expected);
  });

  it('never resolves names: a range matches only URLs that spell an address', () => {
    // localhost resolves to 127.0.0.1, and api.svc may resolve into 10/8: curl proxies both.
    expect(direct('127.0.0.0/8', 'http://localhost:8080/')).toBe(false);
    expect(direct('10.0.0.0/8', 'https://api.svc/')).toBe(false);
    // An IPv4 entry never matches an IPv6 address of another range, nor the reverse.
    expect(direct('::1', 'http://127.0.0.1/')).toBe(false);
    expect(direct('10.0.0.0/8', 'http://[fd00::1]/')).toBe(false);
  });

  it('a port limits an entry to that port, the scheme default counting for a URL without one', () => {
    expect(direct('api.example:8443', 'https://api.example:8443/')).toBe(true);
    expect(direct('api.example:8443', 'https://api.example/')).toBe(false);
    expect(direct('api.example:443', 'https://api.example/')).toBe(true);
    expect(direct('api.example:443', 'http://api.example/')).toBe(false);
    expect(direct('.example:80', 'http://sub.api.example/')).toBe(true);
    expect(direct('10.0.0.5:44000', 'http://10.0.0.5:44000/')).toBe(true);
    expect(direct('10.0.0.5:44000', 'http://10.0.0.5:44001/')).toBe(false);
    expect(direct('10.0.0.0/8:44000', 'http://10.9.9.9:44000/')).toBe(true);
    expect(direct('[::1]:8080', 'http://[::1]:8080/')).toBe(true);
    expect(direct('[::1]:8080', 'http://[::1]:8081/')).toBe(false);
  });

  it('splits on commas and blanks, any number of each, and any entry may match', () => {
    const list = '  example.invalid,,\t10.0.0.0/8 ,  .svc  fd00::/8,';
    expect(direct(list, 'http://10.3.4.5/')).toBe(true);
    expect(direct(list, 'http://dyn.ns.svc/')).toBe(true);
    expect(direct(list, 'http://[fd00::7]/')).toBe(true);
    expect(direct(list, 'http://api.dynect.net/')).toBe(false);
    expect(new NoProxyList(list).ignored).toEqual([]);
  });

  it('ignores, as curl does, entries that can match nothing, and lists them as written', () => {
    const list = new NoProxyList(
      '10.0.0.0/33,host:http,[not-v6],[10.0.0.1],fd00::/129,10.0.0.0/x,a.example:0,a.example:65536,' +
        'bad%name,10.0.0.0/8,a.example:99999,Good.Example',
    );
    expect(list.ignored).toEqual([
      '10.0.0.0/33',
      'host:http',
      '[not-v6]',
      '[10.0.0.1]',
      'fd00::/129',
      '10.0.0.0/x',
      'a.example:0',
      'a.example:65536',
      'bad%name',
      'a.example:99999',
    ]);
    // The usable entries around them still apply.
    expect(list.matches(new URL('http://10.1.1.1/'))).toBe(true);
    expect(list.matches(new URL('https://api.good.example/'))).toBe(true);
    expect(list.matches(new URL('http://11.0.0.1/'))).toBe(false);
  });
});
