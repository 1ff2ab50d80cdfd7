/**
 * Client addresses as the limits see them: the network an address belongs
 * to, so that one person's (or one attacker's) many addresses share a limit.
 */

/**
 * The network an address belongs to, for limits one person's machines share:
 * all of 127.0.0.0/8 (loopback) as one, else the IPv4 /24 or the IPv6 /64
 * (an IPv4-mapped IPv6 address counts as its IPv4 address). Anything else
 * (no socket, under app.request()) is its own key.
 */
export function networkPrefix(address: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/i.exec(address);
  if (v4) return v4[1] === '127' ? '127.0.0.0/8' : `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  if (address.includes(':')) {
    const [head = '', tail = ''] = address.split('%')[0]!.toLowerCase().split('::');
    const left = head ? head.split(':') : [];
    const right = address.includes('::') && tail ? tail.split(':') : [];
    const groups = address.includes('::') ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
    if (groups.length === 8 && groups[7] === '1' && groups.slice(0, 7).every((g) => /^0+$/.test(g))) return '127.0.0.0/8'; // ::1, loopback too
    return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
  }
  return address;
}

/** The address an IPv4-mapped IPv6 address stands for (::ffff:1.2.3.4 is 1.2.3.4). */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}
