/*
 * tls_cipher_speed: the record cipher alone, for bench.py's TLS section.
 * AES-128-GCM of the host's mbedTLS (the library uhttpd links) on 16 KiB
 * records, sealing (a download) and opening (an upload), one core:
 *
 *   tls_cipher_speed [seconds]     ->  "seal <MiB/s> open <MiB/s>"
 *
 * This is the ceiling of any mbedTLS server's bulk transfer on this core;
 * `openssl speed -evp aes-128-gcm` gives the same for nginx's OpenSSL.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbedtls/gcm.h"

#define REC 16384

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    static unsigned char in[REC], out[REC], tag[16];
    unsigned char key[16], iv[12];
    memset(key, 0x42, sizeof(key));
    memset(iv, 0x24, sizeof(iv));
    for (size_t i = 0; i < REC; i++) {
        in[i] = (unsigned char)(i * 7);
    }
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    if (mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128) != 0) {
        return 1;
    }
    double rate[2];
    for (int mode = 0; mode < 2; mode++) {
        /* open: authenticate and decrypt a record sealed above */
        if (mode == 1 && mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, REC, iv, sizeof(iv), iv, 8,
            in, out, sizeof(tag), tag) != 0) {
            return 1;
        }
        unsigned long n = 0;
        double t0 = now_s(), t;
        do {
            for (int k = 0; k < 16; k++) {
                int r = mode == 0
                    ? mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, REC, iv, sizeof(iv), iv, 8, in, out,
                        sizeof(tag), tag)
                    : mbedtls_gcm_auth_decrypt(&g, REC, iv, sizeof(iv), iv, 8, tag, sizeof(tag), out, in);
                if (r != 0) {
                    return 1;
                }
                n++;
            }
            t = now_s() - t0;
        } while (t < secs);
        rate[mode] = (double)n * REC / t / (1024.0 * 1024.0);
    }
    mbedtls_gcm_free(&g);
    printf("seal %.0f open %.0f\n", rate[0], rate[1]);
    return 0;
}
