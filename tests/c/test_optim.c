/* test_optim.c — the optimizer kernels (src/optim.c): three steps of each algorithm under
 * several settings must give exactly (bit for bit) the parameters PyTorch 1.13 gives, for
 * float32 and float64, with contiguous and strided operands, with the AVX2+FMA loops and the
 * baseline ones; state handling (SGD's first buffer, step counters, versions), aliasing,
 * empty and 0-dim parameters, and errors that change nothing. */
#include "mt_test.h"

#include <stdlib.h>

extern int mt_optim_baseline_only; /* src/optim.c's switch to the baseline loops */

enum { K_SGD, K_ADAM, K_ADAMW, K_RMSPROP, K_ADAGRAD };
#define F_NESTEROV 1u
#define F_MAXIMIZE 2u
#define F_AMSGRAD 4u
#define F_CENTERED 8u

#define N 19 /* two AVX2 float vectors and a tail */
#define STEPS 3

/* h[]: SGD lr, momentum, dampening, weight_decay; Adam(W) lr, beta1, beta2, eps, weight_decay;
 * RMSprop lr, alpha, eps, weight_decay, momentum; Adagrad lr, lr_decay, eps, weight_decay,
 * initial_accumulator_value. `want`: the parameter after STEPS steps. */
typedef struct golden {
  const char *name;
  int algo;
  double h[5];
  unsigned flags;
  mt_dtype dtype;
  double want[N];
} golden;

/* Written by `tools/pytorch_optim.py golden` (PyTorch 1.13, CPU): the parameter starts at
 * init(i) and step t's gradient is grad(t, i) below. */
static const golden GOLDEN[] = {
    {"SGD lr=0.1", K_SGD, {0x1.999999999999ap-4, 0x0p+0, 0x0p+0, 0x0p+0}, 0, MT_FLOAT32,
     {-0x1.0e6668p+0, -0x1.466666p-1, -0x1.cp-3, 0x1.99999ap-3, 0x1.e66666p-2, 0x1.c9999ap-1, -0x1.ap-1, -0x1.133332p-1, -0x1.e66666p-4, 0x1.333332p-2, 0x1.266666p-1, 0x1.fcccccp-1, -0x1.6ccccep-1, -0x1.cp-2, -0x1.333334p-6, 0x1.99999ap-2, 0x1.59999ap-1, -0x1.08p+0, -0x1.39999ap-1}},
    {"SGD lr=0.1", K_SGD, {0x1.999999999999ap-4, 0x0p+0, 0x0p+0, 0x0p+0}, 0, MT_FLOAT64,
     {-0x1.0e66666666667p+0, -0x1.4666666666667p-1, -0x1.cp-3, 0x1.999999999999ap-3, 0x1.e666666666666p-2, 0x1.c99999999999ap-1, -0x1.ap-1, -0x1.1333333333333p-1, -0x1.e666666666665p-4, 0x1.3333333333333p-2, 0x1.2666666666667p-1, 0x1.fcccccccccccdp-1, -0x1.6cccccccccccdp-1, -0x1.cp-2, -0x1.3333333333332p-6, 0x1.999999999999ap-2, 0x1.599999999999ap-1, -0x1.08p+0, -0x1.3999999999999p-1}},
    {"SGD lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.03", K_SGD, {0x1.999999999999ap-5, 0x1.ccccccccccccdp-1, 0x1p-2, 0x1.eb851eb851eb8p-6}, 0, MT_FLOAT32,
     {-0x1.fdc586p-1, -0x1.54ab6ap-1, -0x1.f19f8ap-3, 0x1.d2aaeap-3, 0x1.d2b84cp-2, 0x1.da6ec4p-1, -0x1.b4805cp-1, -0x1.efacdcp-2, -0x1.3af148p-3, 0x1.130e68p-2, 0x1.1707b6p-1, 0x1.ef4b3cp-1, -0x1.57ab6p-1, -0x1.c5f3eap-2, 0x1.c3151p-6, 0x1.6e6588p-2, 0x1.73dcbp-1, -0x1.0d8936p+0, -0x1.42cee6p-1}},
    {"SGD lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.03", K_SGD, {0x1.999999999999ap-5, 0x1.ccccccccccccdp-1, 0x1p-2, 0x1.eb851eb851eb8p-6}, 0, MT_FLOAT64,
     {-0x1.fdc58470b4eb5p-1, -0x1.54ab689636b8bp-1, -0x1.f19f8a2cb68ebp-3, 0x1.d2aaeb62f62aap-3, 0x1.d2b84b818014ap-2, 0x1.da6ec324ab38bp-1, -0x1.b4805a6107e04p-1, -0x1.efacdbdf30c9ep-2, -0x1.3af1485468c93p-3, 0x1.130e67ebddc56p-2, 0x1.1707b636d37bcp-1, 0x1.ef4b3c41dc90bp-1, -0x1.57ab5fba698cbp-1, -0x1.c5f3e9a4ce19fp-2, 0x1.c3151230842c7p-6, 0x1.6e6588d804a82p-2, 0x1.73dcb0dd71cf6p-1, -0x1.0d89365420a4cp+0, -0x1.42cee69d3834ap-1}},
    {"SGD lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.01, maximize=True", K_SGD, {0x1.999999999999ap-5, 0x1.6666666666666p-1, 0x0p+0, 0x1.47ae147ae147bp-7}, F_NESTEROV | F_MAXIMIZE, MT_FLOAT32,
     {-0x1.e8d6e2p-1, -0x1.331036p-1, -0x1.13a6e8p-2, 0x1.add7aap-6, 0x1.13bf56p-1, 0x1.ab0186p-1, -0x1.dbba0cp-1, -0x1.e7dbd6p-2, -0x1.f13a1cp-4, 0x1.ac5608p-3, 0x1.5f6b86p-1, 0x1.045426p+0, -0x1.9c97bep-1, -0x1.2c8e4ep-2, 0x1.f6138ap-10, 0x1.6d8362p-2, 0x1.9e8dd4p-1, -0x1.e82dcp-1, -0x1.3ef0fap-1}},
    {"SGD lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.01, maximize=True", K_SGD, {0x1.999999999999ap-5, 0x1.6666666666666p-1, 0x0p+0, 0x1.47ae147ae147bp-7}, F_NESTEROV | F_MAXIMIZE, MT_FLOAT64,
     {-0x1.e8d6dfbaf8dd3p-1, -0x1.3310381c98bd5p-1, -0x1.13a6e64e1c13ep-2, 0x1.add7b31a03e7ap-6, 0x1.13bf5595d28bep-1, 0x1.ab018655b0b5p-1, -0x1.dbba0c204d8b5p-1, -0x1.e7dbd6039a2aap-2, -0x1.f13a1b1b67abfp-4, 0x1.ac56064876f78p-3, 0x1.5f6b855973a06p-1, 0x1.045425277f29ep+0, -0x1.9c97bf0581e33p-1, -0x1.2c8e4e10feed4p-2, 0x1.f6136ebd650b6p-10, 0x1.6d8362ab7da4bp-2, 0x1.9e8dd2743f485p-1, -0x1.e82dc001bef8p-1, -0x1.3ef0fb0c34449p-1}},
    {"Adam lr=0.01", K_ADAM, {0x1.47ae147ae147bp-7, 0x1.ccccccccccccdp-1, 0x1.ff7ced916872bp-1, 0x1.5798ee2308c3ap-27, 0x0p+0}, 0, MT_FLOAT32,
     {-0x1.fd30cap-1, -0x1.45c59ap-1, -0x1.f24002p-3, 0x1.30e46ep-3, 0x1.eb4bc8p-2, 0x1.c97246p-1, -0x1.c089aap-1, -0x1.f66e9ap-2, -0x1.116b5ep-3, 0x1.0a0c94p-2, 0x1.379ef8p-1, 0x1.f6abd6p-1, -0x1.756d82p-1, -0x1.97ee4ep-2, 0x1.a3f82cp-7, 0x1.7a11ep-2, 0x1.80d5a6p-1, -0x1.03915p+0, -0x1.43090ap-1}},
    {"Adam lr=0.01", K_ADAM, {0x1.47ae147ae147bp-7, 0x1.ccccccccccccdp-1, 0x1.ff7ced916872bp-1, 0x1.5798ee2308c3ap-27, 0x0p+0}, 0, MT_FLOAT64,
     {-0x1.fd30c8ba2110ep-1, -0x1.45c59bf9f6055p-1, -0x1.f240003036722p-3, 0x1.30e46f29b6492p-3, 0x1.eb4bc774e9b99p-2, 0x1.c9724692d046dp-1, -0x1.c089aa32f1b9p-1, -0x1.f66e9925f89b7p-2, -0x1.116b5ceb23e99p-3, 0x1.0a0c94a2ae904p-2, 0x1.379ef7fa425d7p-1, 0x1.f6abd4cc8827bp-1, -0x1.756d80ba5c6e6p-1, -0x1.97ee4f165e947p-2, 0x1.a3f828d46d8c4p-7, 0x1.7a11e0c1c7178p-2, 0x1.80d5a709977d1p-1, -0x1.039150c8a70fep+0, -0x1.430909f305bfp-1}},
    {"Adam lr=0.03, betas=(0.8, 0.95), eps=0.001, weight_decay=0.1, amsgrad=True", K_ADAM, {0x1.eb851eb851eb8p-6, 0x1.999999999999ap-1, 0x1.e666666666666p-1, 0x1.0624dd2f1a9fcp-10, 0x1.999999999999ap-4}, F_AMSGRAD, MT_FLOAT32,
     {-0x1.f0a784p-1, -0x1.4b589p-1, -0x1.d00054p-3, 0x1.8accdap-3, 0x1.bf4f4cp-2, 0x1.d41968p-1, -0x1.bc6178p-1, -0x1.df3fa2p-2, -0x1.2a077p-3, 0x1.19d646p-2, 0x1.250564p-1, 0x1.e02b7ap-1, -0x1.5ebccep-1, -0x1.c395c6p-2, 0x1.1550dep-5, 0x1.6ca70ep-2, 0x1.7aee44p-1, -0x1.06842ep+0, -0x1.35c6c2p-1}},
    {"Adam lr=0.03, betas=(0.8, 0.95), eps=0.001, weight_decay=0.1, amsgrad=True", K_ADAM, {0x1.eb851eb851eb8p-6, 0x1.999999999999ap-1, 0x1.e666666666666p-1, 0x1.0624dd2f1a9fcp-10, 0x1.999999999999ap-4}, F_AMSGRAD, MT_FLOAT64,
     {-0x1.f0a7838dc240dp-1, -0x1.4b58909eab1dbp-1, -0x1.d00052727f6bp-3, 0x1.8accd73175693p-3, 0x1.bf4f4b85432f2p-2, 0x1.d4196712c5edap-1, -0x1.bc617a6cc9c38p-1, -0x1.df3fa310acd1ep-2, -0x1.2a0770873aeb9p-3, 0x1.19d646e94280ap-2, 0x1.2505637a6de28p-1, 0x1.e02b7856b5228p-1, -0x1.5ebccc624934dp-1, -0x1.c395c62303571p-2, 0x1.1550dc5e6cffp-5, 0x1.6ca70e9ffebfep-2, 0x1.7aee44af1af9fp-1, -0x1.06842d8858acep+0, -0x1.35c6c22124c9ap-1}},
    {"Adam lr=0.01, maximize=True, amsgrad=True", K_ADAM, {0x1.47ae147ae147bp-7, 0x1.ccccccccccccdp-1, 0x1.ff7ced916872bp-1, 0x1.5798ee2308c3ap-27, 0x0p+0}, F_MAXIMIZE | F_AMSGRAD, MT_FLOAT32,
     {-0x1.01679cp+0, -0x1.3a3a6ep-1, -0x1.06ep-2, 0x1.9e3722p-4, 0x1.0a5a1cp-1, 0x1.b68dbap-1, -0x1.bf7656p-1, -0x1.04c8b4p-1, -0x1.dd2946p-4, 0x1.ebe6d8p-3, 0x1.486108p-1, 0x1.04aa16p+0, -0x1.8a927ep-1, -0x1.6811b2p-2, -0x1.a3f82cp-7, 0x1.85ee2p-2, 0x1.7f2a5ap-1, -0x1.f8dd5ep-1, -0x1.3cf6f6p-1}},
    {"Adam lr=0.01, maximize=True, amsgrad=True", K_ADAM, {0x1.47ae147ae147bp-7, 0x1.ccccccccccccdp-1, 0x1.ff7ced916872bp-1, 0x1.5798ee2308c3ap-27, 0x0p+0}, F_MAXIMIZE | F_AMSGRAD, MT_FLOAT64,
     {-0x1.01679ba2ef77ap+0, -0x1.3a3a6d56e0487p-1, -0x1.06dfffe7e4c6fp-2, 0x1.9e3721ac936dbp-4, 0x1.0a5a1c458b234p-1, 0x1.b68db96d2fb93p-1, -0x1.bf7655cd0e47p-1, -0x1.04c8b36d03b25p-1, -0x1.dd294629b82cbp-4, 0x1.ebe6d6baa2dfap-3, 0x1.48610805bda29p-1, 0x1.04aa1599bbec4p+0, -0x1.8a927f45a391ap-1, -0x1.6811b0e9a16b9p-2, -0x1.a3f828d46d8c4p-7, 0x1.85ee1f3e38e88p-2, 0x1.7f2a58f66882fp-1, -0x1.f8dd5e6eb1e04p-1, -0x1.3cf6f60cfa41p-1}},
    {"AdamW lr=0.02, weight_decay=0.1", K_ADAMW, {0x1.47ae147ae147bp-6, 0x1.ccccccccccccdp-1, 0x1.ff7ced916872bp-1, 0x1.5798ee2308c3ap-27, 0x1.999999999999ap-4}, 0, MT_FLOAT32,
     {-0x1.f75bacp-1, -0x1.4995d8p-1, -0x1.e18bf6p-3, 0x1.6004p-3, 0x1.d3a4cep-2, 0x1.d0275cp-1, -0x1.be5c34p-1, -0x1.e9e4eap-2, -0x1.21258p-3, 0x1.12806cp-2, 0x1.2d5f7ap-1, 0x1.ea5598p-1, -0x1.689d2p-1, -0x1.ad714cp-2, 0x1.a24eap-6, 0x1.71ea38p-2, 0x1.7f5534p-1, -0x1.059478p+0, -0x1.4423a6p-1}},
    {"AdamW lr=0.02, weight_decay=0.1", K_ADAMW, {0x1.47ae147ae147bp-6, 0x1.ccccccccccccdp-1, 0x1.ff7ced916872bp-1, 0x1.5798ee2308c3ap-27, 0x1.999999999999ap-4}, 0, MT_FLOAT64,
     {-0x1.f75ba6ce95a45p-1, -0x1.4995d44419049p-1, -0x1.e18bf535f7574p-3, 0x1.6003ff170db89p-3, 0x1.d3a4ca0d9f894p-2, 0x1.d0275a77c232p-1, -0x1.be5c335f07d4fp-1, -0x1.e9e4e92881e48p-2, -0x1.21257f9dce899p-3, 0x1.12806ae3cd841p-2, 0x1.2d5f75306e5d5p-1, 0x1.ea55959cf2906p-1, -0x1.689d1ca2f8b8p-1, -0x1.ad7149e4d904ap-2, 0x1.a24e995fe85f1p-6, 0x1.71ea36957700ep-2, 0x1.7f5532f985c49p-1, -0x1.0594761de2876p+0, -0x1.4423a3816d6p-1}},
    {"AdamW lr=0.02, weight_decay=0.05, amsgrad=True, maximize=True, betas=(0.7, 0.9)", K_ADAMW, {0x1.47ae147ae147bp-6, 0x1.6666666666666p-1, 0x1.ccccccccccccdp-1, 0x1.5798ee2308c3ap-27, 0x1.999999999999ap-5}, F_MAXIMIZE | F_AMSGRAD, MT_FLOAT32,
     {-0x1.009fcap+0, -0x1.35b05cp-1, -0x1.0d9678p-2, 0x1.4aa4ep-4, 0x1.13060cp-1, 0x1.aeb8f2p-1, -0x1.bf8a7p-1, -0x1.05e4ap-1, -0x1.ca1df8p-4, 0x1.d65e3ap-3, 0x1.4dc892p-1, 0x1.08282ep+0, -0x1.915c46p-1, -0x1.50d0f8p-2, -0x1.424c02p-6, 0x1.86811p-2, 0x1.7fc8fcp-1, -0x1.f25762p-1, -0x1.399168p-1}},
    {"AdamW lr=0.02, weight_decay=0.05, amsgrad=True, maximize=True, betas=(0.7, 0.9)", K_ADAMW, {0x1.47ae147ae147bp-6, 0x1.6666666666666p-1, 0x1.ccccccccccccdp-1, 0x1.5798ee2308c3ap-27, 0x1.999999999999ap-5}, F_MAXIMIZE | F_AMSGRAD, MT_FLOAT64,
     {-0x1.009fc9a59ee61p+0, -0x1.35b05d79a5f39p-1, -0x1.0d96759b7f2c6p-2, 0x1.4aa4e032f9919p-4, 0x1.13060cfe8ad35p-1, 0x1.aeb8f0297079dp-1, -0x1.bf8a6e8a5c069p-1, -0x1.05e49e225dd2ep-1, -0x1.ca1df78b92719p-4, 0x1.d65e3722b3de7p-3, 0x1.4dc892aad11ecp-1, 0x1.08282b23e82cp+0, -0x1.915c47853f9bcp-1, -0x1.50d0f979c14a9p-2, -0x1.424bfe1e78b8p-6, 0x1.86810f371a2bbp-2, 0x1.7fc8fc95c5d89p-1, -0x1.f25760cd33c24p-1, -0x1.399168945498p-1}},
    {"RMSprop lr=0.01", K_RMSPROP, {0x1.47ae147ae147bp-7, 0x1.fae147ae147aep-1, 0x1.5798ee2308c3ap-27, 0x0p+0, 0x0p+0}, 0, MT_FLOAT32,
     {-0x1.0cbe84p+0, -0x1.53aaf8p-1, -0x1.4e0688p-3, 0x1.dfcc82p-3, 0x1.73be64p-2, 0x1.dad184p-1, -0x1.b45f88p-1, -0x1.0bf0e4p-1, -0x1.297446p-3, 0x1.635466p-2, 0x1.19a39ap-1, 0x1.be25bcp-1, -0x1.5a3bep-1, -0x1.0f23p-1, 0x1.d662p-9, 0x1.7c64bep-2, 0x1.5b8048p-1, -0x1.0e961cp+0, -0x1.4ab572p-1}},
    {"RMSprop lr=0.01", K_RMSPROP, {0x1.47ae147ae147bp-7, 0x1.fae147ae147aep-1, 0x1.5798ee2308c3ap-27, 0x0p+0, 0x0p+0}, 0, MT_FLOAT64,
     {-0x1.0cbe857b99b67p+0, -0x1.53aaf8106ca94p-1, -0x1.4e0688e0c792dp-3, 0x1.dfcc7fccd4339p-3, 0x1.73be611bd0686p-2, 0x1.dad183a8044b2p-1, -0x1.b45f893f4c14fp-1, -0x1.0bf0e51e84319p-1, -0x1.297448543a4e2p-3, 0x1.6354653eb12ccp-2, 0x1.19a399813893p-1, 0x1.be25bd171fdebp-1, -0x1.5a3bdf2b7f4cap-1, -0x1.0f22ff18e2292p-1, 0x1.d6622dd70d98p-9, 0x1.7c64bc783d67cp-2, 0x1.5b804696d9c78p-1, -0x1.0e961c8cfb7c6p+0, -0x1.4ab5727a68d45p-1}},
    {"RMSprop lr=0.01, alpha=0.8, centered=True, weight_decay=0.1", K_RMSPROP, {0x1.47ae147ae147bp-7, 0x1.999999999999ap-1, 0x1.5798ee2308c3ap-27, 0x1.999999999999ap-4, 0x0p+0}, F_CENTERED, MT_FLOAT32,
     {-0x1.00744p+0, -0x1.4305c4p-1, -0x1.d209dap-3, 0x1.36f0a2p-3, 0x1.d9688cp-2, 0x1.c269dep-1, -0x1.bb900ap-1, -0x1.003b7p-1, -0x1.0a601ep-3, 0x1.17a9b8p-2, 0x1.33fa7ap-1, 0x1.ececf8p-1, -0x1.739cf2p-1, -0x1.a7e962p-2, 0x1.c20ccp-11, 0x1.7ba81ap-2, 0x1.74dddap-1, -0x1.01f2d4p+0, -0x1.352532p-1}},
    {"RMSprop lr=0.01, alpha=0.8, centered=True, weight_decay=0.1", K_RMSPROP, {0x1.47ae147ae147bp-7, 0x1.999999999999ap-1, 0x1.5798ee2308c3ap-27, 0x1.999999999999ap-4, 0x0p+0}, F_CENTERED, MT_FLOAT64,
     {-0x1.00743fe5469ebp+0, -0x1.4305c438961dbp-1, -0x1.d209db062f05cp-3, 0x1.36f09ff6e2a74p-3, 0x1.d9688ca44ebd6p-2, 0x1.c269de7b85afp-1, -0x1.bb9009da405ccp-1, -0x1.003b7029cfc92p-1, -0x1.0a601d83de13cp-3, 0x1.17a9b7226d4d7p-2, 0x1.33fa777f5f4dfp-1, 0x1.ececf7beff99cp-1, -0x1.739cf0214d442p-1, -0x1.a7e96274bf1dfp-2, 0x1.c20d3b8336bap-11, 0x1.7ba81a7a928ebp-2, 0x1.74ddd96fc0fafp-1, -0x1.01f2d4a1e8145p+0, -0x1.3525307196afbp-1}},
    {"RMSprop lr=0.01, momentum=0.9, eps=0.0001", K_RMSPROP, {0x1.47ae147ae147bp-7, 0x1.fae147ae147aep-1, 0x1.a36e2eb1c432dp-14, 0x0p+0, 0x1.ccccccccccccdp-1}, 0, MT_FLOAT32,
     {-0x1.ddf92p-1, -0x1.8eadccp-1, -0x1.5b40c2p-4, 0x1.be2d96p-2, 0x1.b464fp-4, 0x1.1bee64p+0, -0x1.e1a27ap-1, -0x1.8bb048p-2, -0x1.0227a4p-2, 0x1.bb04fcp-2, 0x1.aac98p-2, 0x1.3b3164p-1, -0x1.f1c42cp-2, -0x1.915e1p-1, 0x1.460fc6p-3, 0x1.1690d6p-2, 0x1.8db288p-1, -0x1.2e62a2p+0, -0x1.789fbp-1}},
    {"RMSprop lr=0.01, momentum=0.9, eps=0.0001", K_RMSPROP, {0x1.47ae147ae147bp-7, 0x1.fae147ae147aep-1, 0x1.a36e2eb1c432dp-14, 0x0p+0, 0x1.ccccccccccccdp-1}, 0, MT_FLOAT64,
     {-0x1.ddf91d7af09ccp-1, -0x1.8eadccac7daf9p-1, -0x1.5b40c4c260527p-4, 0x1.be2d9651aad2ap-2, 0x1.b464eea2e38c1p-4, 0x1.1bee63ac57751p+0, -0x1.e1a27aee05546p-1, -0x1.8bb048aaf4d47p-2, -0x1.0227a54885f7dp-2, 0x1.bb04fa6800a0bp-2, 0x1.aac980973857ap-2, 0x1.3b3164b1ebf56p-1, -0x1.f1c42a847a46ep-2, -0x1.915e1266ce23p-1, 0x1.460fc7b109cb6p-3, 0x1.1690d54abf49bp-2, 0x1.8db287db65233p-1, -0x1.2e629fb9b290bp+0, -0x1.789fb06587263p-1}},
    {"RMSprop lr=0.005, momentum=0.5, centered=True, maximize=True", K_RMSPROP, {0x1.47ae147ae147bp-8, 0x1.fae147ae147aep-1, 0x1.5798ee2308c3ap-27, 0x0p+0, 0x1p-1}, F_MAXIMIZE | F_CENTERED, MT_FLOAT32,
     {-0x1.fee58ep-1, -0x1.2aa072p-1, -0x1.39df4ep-2, 0x1.8416dep-6, 0x1.433f8p-1, 0x1.9d8bbep-1, -0x1.be1ea6p-1, -0x1.089f2cp-1, -0x1.83bb06p-4, 0x1.7e90dp-3, 0x1.6146eep-1, 0x1.20a576p+0, -0x1.a923b2p-1, -0x1.e2cde2p-3, -0x1.232dd6p-5, 0x1.9464b8p-2, 0x1.893496p-1, -0x1.e49b68p-1, -0x1.2da7cep-1}},
    {"RMSprop lr=0.005, momentum=0.5, centered=True, maximize=True", K_RMSPROP, {0x1.47ae147ae147bp-8, 0x1.fae147ae147aep-1, 0x1.5798ee2308c3ap-27, 0x0p+0, 0x1p-1}, F_MAXIMIZE | F_CENTERED, MT_FLOAT64,
     {-0x1.fee59025f9168p-1, -0x1.2aa0736a7036dp-1, -0x1.39df4c69b81cap-2, 0x1.8416e379e26d8p-6, 0x1.433f7f98d6d51p-1, 0x1.9d8bc052cbf61p-1, -0x1.be1ea521b5a95p-1, -0x1.089f2c17c280ep-1, -0x1.83bb061e7e9dep-4, 0x1.7e90d132942efp-3, 0x1.6146ecf28a14ep-1, 0x1.20a576d95bb66p+0, -0x1.a923b3154a42p-1, -0x1.e2cde2ae43903p-3, -0x1.232dd3d118fccp-5, 0x1.9464b8e73fe9cp-2, 0x1.89349483dc11dp-1, -0x1.e49b68d57ce29p-1, -0x1.2da7cfa09cd65p-1}},
    {"Adagrad lr=0.1", K_ADAGRAD, {0x1.999999999999ap-4, 0x0p+0, 0x1.b7cdfd9d7bdbbp-34, 0x0p+0, 0x0p+0}, 0, MT_FLOAT32,
     {-0x1.0ca846p+0, -0x1.53c42ap-1, -0x1.4e3db4p-3, 0x1.dff0dap-3, 0x1.738f7ep-2, 0x1.dafbaap-1, -0x1.b47fa6p-1, -0x1.0bc032p-1, -0x1.29f3eep-3, 0x1.634b4ep-2, 0x1.19a032p-1, 0x1.be0f02p-1, -0x1.5a1a0ep-1, -0x1.0f3444p-1, 0x1.03558p-8, 0x1.7c1f28p-2, 0x1.5ba118p-1, -0x1.0e9db8p+0, -0x1.4ac902p-1}},
    {"Adagrad lr=0.1", K_ADAGRAD, {0x1.999999999999ap-4, 0x0p+0, 0x1.b7cdfd9d7bdbbp-34, 0x0p+0, 0x0p+0}, 0, MT_FLOAT64,
     {-0x1.0ca8472d98197p+0, -0x1.53c42857c655ap-1, -0x1.4e3db3fc16abfp-3, 0x1.dff0dd15ccf92p-3, 0x1.738f7f25df2c1p-2, 0x1.dafba83dfbd81p-1, -0x1.b47fa621730cdp-1, -0x1.0bc031b9a4645p-1, -0x1.29f3f108a560fp-3, 0x1.634b4e2dc3e04p-2, 0x1.19a0337ef4125p-1, 0x1.be0f0328325dep-1, -0x1.5a1a0fc06e98dp-1, -0x1.0f344412911eap-1, 0x1.03558ef0d973p-8, 0x1.7c1f273c18f17p-2, 0x1.5ba115a2170a4p-1, -0x1.0e9db663327abp+0, -0x1.4ac900ab5e164p-1}},
    {"Adagrad lr=0.1, lr_decay=0.1, eps=0.001, weight_decay=0.2, initial_accumulator_value=0.5, maximize=True", K_ADAGRAD, {0x1.999999999999ap-4, 0x1.999999999999ap-4, 0x1.0624dd2f1a9fcp-10, 0x1.999999999999ap-3, 0x1p-1}, F_MAXIMIZE, MT_FLOAT32,
     {-0x1.ceeef2p-1, -0x1.2631cep-1, -0x1.032124p-2, 0x1.756d9ap-5, 0x1.0404a2p-1, 0x1.9b5bd2p-1, -0x1.be6ecap-1, -0x1.ca3adcp-2, -0x1.cdd8c4p-4, 0x1.9954fp-3, 0x1.4aeda6p-1, 0x1.ebcc62p-1, -0x1.8282cp-1, -0x1.2858ecp-2, 0x1.7b73ep-8, 0x1.63ce9p-2, 0x1.887f2ap-1, -0x1.d7bd4p-1, -0x1.2d8104p-1}},
    {"Adagrad lr=0.1, lr_decay=0.1, eps=0.001, weight_decay=0.2, initial_accumulator_value=0.5, maximize=True", K_ADAGRAD, {0x1.999999999999ap-4, 0x1.999999999999ap-4, 0x1.0624dd2f1a9fcp-10, 0x1.999999999999ap-3, 0x1p-1}, F_MAXIMIZE, MT_FLOAT64,
     {-0x1.ceeef228cdfecp-1, -0x1.2631ceea5ca81p-1, -0x1.0321254a1f0edp-2, 0x1.756d9bb2cc492p-5, 0x1.0404a0cac2cddp-1, 0x1.9b5bd24087d92p-1, -0x1.be6eca73b2435p-1, -0x1.ca3adc51de6b6p-2, -0x1.cdd8c299cbb7cp-4, 0x1.9954ee1878f8ap-3, 0x1.4aeda622aac35p-1, 0x1.ebcc5f3e58547p-1, -0x1.8282c18892e64p-1, -0x1.2858ea7bb941ap-2, 0x1.7b73c91458108p-8, 0x1.63ce905214315p-2, 0x1.887f29ed30586p-1, -0x1.d7bd40c720654p-1, -0x1.2d8103c1b7131p-1}},
};

static double init_value(int i) { return ((i * 37) % 17 - 8) / 8.0; }
static double grad_value(int t, int i) { return ((i * 13 + t * 7) % 23 - 11) / 16.0; }

/* A 1-D tensor of n elements; strided ones are every other element of a larger storage. */
static mt_tensor *vec(mt_dtype dt, int64_t n, bool strided, double fill) {
  mt_tensor *t;
  if (!strided) {
    if (mt_full(&t, dt, 1, &n, mt_scalar_float(fill))) abort();
    return t;
  }
  int64_t n2 = 2 * n + 1, stride = 2;
  mt_tensor *base;
  if (mt_full(&base, dt, 1, &n2, mt_scalar_float(fill))) abort();
  if (mt_from_storage(&t, base->storage, dt, 1, 1, &n, &stride)) abort();
  mt_tensor_release(base);
  return t;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

static void set(mt_tensor *t, int64_t i, double v) {
  if (mt_set_flat(t, i, mt_scalar_float(v))) abort();
}

/* Runs a golden case as the Lua optimizers drive the kernels: state made on the first step. */
static mt_status run_case(const golden *c, bool strided, mt_tensor **out) {
  mt_dtype dt = c->dtype;
  mt_tensor *p = vec(dt, N, strided, 0), *g = vec(dt, N, strided, 0);
  for (int i = 0; i < N; i++) set(p, i, init_value(i));
  mt_tensor *s[3] = {NULL, NULL, NULL}, *step;
  if (mt_scalar_tensor(&step, MT_FLOAT32, mt_scalar_float(0))) abort();
  double init_acc = c->algo == K_ADAGRAD ? c->h[4] : 0;
  for (int k = 0; k < 3; k++)
    if (!(c->algo == K_SGD && k == 0)) s[k] = vec(dt, N, strided, init_acc); /* SGD's buffer: made by step 1 */
  mt_status st = MT_OK;
  for (int t = 1; t <= STEPS && st == MT_OK; t++) {
    for (int i = 0; i < N; i++) set(g, i, grad_value(t, i));
    const double *h = c->h;
    bool max = c->flags & F_MAXIMIZE;
    switch (c->algo) {
    case K_SGD: {
      mt_sgd_opts o = {h[0], h[1], h[2], h[3], c->flags & F_NESTEROV, max};
      st = mt_sgd_step(p, g, &s[0], &o);
      if (st == MT_OK && t == 1 && strided && s[0]) { /* go on with a strided copy of the new buffer */
        mt_tensor *b = vec(dt, N, true, 0);
        if (mt_copy_(b, s[0])) abort();
        mt_tensor_release(s[0]);
        s[0] = b;
      }
      break;
    }
    case K_ADAM:
    case K_ADAMW: {
      mt_adam_opts o = {h[0], h[1], h[2], h[3], h[4], c->flags & F_AMSGRAD, max, c->algo == K_ADAMW};
      st = mt_adam_step(p, g, step, s[0], s[1], s[2], &o);
      break;
    }
    case K_RMSPROP: {
      mt_rmsprop_opts o = {h[0], h[1], h[2], h[3], h[4], c->flags & F_CENTERED, max};
      st = mt_rmsprop_step(p, g, s[0], s[1], s[2], &o);
      break;
    }
    default: {
      mt_adagrad_opts o = {h[0], h[1], h[2], h[3], max};
      st = mt_adagrad_step(p, g, step, s[0], &o);
    }
    }
  }
  if (st == MT_OK && (c->algo == K_ADAM || c->algo == K_ADAMW || c->algo == K_ADAGRAD)) CHECK(at(step, 0) == STEPS);
  for (int k = 0; k < 3; k++) mt_tensor_release(s[k]);
  mt_tensor_release(step);
  mt_tensor_release(g);
  *out = p;
  return st;
}

static void test_golden(void) {
  for (int baseline = 0; baseline <= 1; baseline++) {
    mt_optim_baseline_only = baseline;
    for (size_t c = 0; c < sizeof GOLDEN / sizeof GOLDEN[0]; c++) {
      for (int strided = 0; strided <= 1; strided++) {
        mt_tensor *p;
        OK(run_case(&GOLDEN[c], strided, &p));
        int bad = 0;
        for (int i = 0; i < N; i++) {
          double got = at(p, i), want = GOLDEN[c].want[i];
          if (got != want && bad++ == 0)
            fprintf(stderr, "%s (%s, %s, %s): element %d is %a, PyTorch's %a\n", GOLDEN[c].name,
                    mt_dtype_info(GOLDEN[c].dtype)->name, strided ? "strided" : "contiguous",
                    baseline ? "baseline" : "dispatched", i, got, want);
        }
        CHECK(bad == 0);
        mt_tensor_release(p);
      }
    }
  }
  mt_optim_baseline_only = 0;
}

/* SGD's first step with momentum makes the buffer: the update direction, grad + wd * param. */
static void test_sgd_first_buffer(void) {
  mt_tensor *p = vec(MT_FLOAT32, 4, false, 2), *g = vec(MT_FLOAT32, 4, false, 0.5), *buf = NULL;
  uint32_t v0 = mt_tensor_version(p);
  mt_sgd_opts o = {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.25};
  OK(mt_sgd_step(p, g, &buf, &o));
  CHECK(buf && buf->dtype == MT_FLOAT32 && mt_numel(buf) == 4 && mt_is_contiguous(buf));
  CHECK(buf && at(buf, 3) == 1.0);           /* 0.5 + 0.25 * 2 */
  CHECK(at(p, 0) == 1.5);                    /* 2 - 0.5 * 1 */
  CHECK(mt_tensor_version(p) != v0);         /* in-place writes are visible to autograd's checks */
  mt_tensor *same = buf;
  OK(mt_sgd_step(p, g, &buf, &o));
  CHECK(buf == same);                        /* later steps update it in place */
  CHECK(at(buf, 0) == 0.9f + 0.875f);        /* momentum * buf + (1 - 0) * (0.5 + 0.25 * 1.5) */
  /* without momentum no buffer is made or needed */
  mt_sgd_opts plain = {.lr = 1};
  OK(mt_sgd_step(p, g, NULL, &plain));
  mt_tensor_release(buf);
  mt_tensor_release(p);
  mt_tensor_release(g);
}

/* The step counter: incremented in its own dtype; a float64 one works as well. */
static void test_step_counter(void) {
  mt_tensor *p = vec(MT_FLOAT64, 3, false, 1), *g = vec(MT_FLOAT64, 3, false, 1);
  mt_tensor *m = vec(MT_FLOAT64, 3, false, 0), *v = vec(MT_FLOAT64, 3, false, 0), *step;
  OK(mt_scalar_tensor(&step, MT_FLOAT64, mt_scalar_float(41)));
  mt_adam_opts o = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
  OK(mt_adam_step(p, g, step, m, v, NULL, &o));
  CHECK(at(step, 0) == 42);
  /* step 42 with g = 1: m = 0.1, v = 0.001; the bias corrections use t = 42 */
  double bc1 = 1 - pow(0.9, 42), bc2 = 1 - pow(0.999, 42);
  CHECK_NEAR(at(p, 0), 1 - 0.1 / bc1 * 0.1 / (sqrt(0.001) / sqrt(bc2) + 1e-8), 1e-12);
  mt_tensor_release(step);
  mt_tensor_release(p);
  mt_tensor_release(g);
  mt_tensor_release(m);
  mt_tensor_release(v);
}

/* A gradient that is the parameter itself (or shares its memory) is read before any write. */
static void test_aliasing(void) {
  mt_tensor *p = vec(MT_FLOAT32, N, false, 0);
  for (int i = 0; i < N; i++) set(p, i, init_value(i) + 0.1);
  mt_sgd_opts o = {.lr = 0.375};
  OK(mt_sgd_step(p, p, NULL, &o));
  for (int i = 0; i < N; i++) {
    float x = (float)(init_value(i) + 0.1);
    CHECK(at(p, i) == fmaf(-0.375f, x, x));
  }
  /* state tensors that share memory cannot both be written */
  mt_tensor *m = vec(MT_FLOAT32, N, false, 0), *m2, *step;
  OK(mt_alias(&m2, m));
  OK(mt_scalar_tensor(&step, MT_FLOAT32, mt_scalar_float(0)));
  mt_adam_opts ao = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.99};
  FAILS(mt_adam_step(p, m, step, m, m2, NULL, &ao), MT_EARG, "exp_avg and exp_avg_sq share memory");
  FAILS(mt_adam_step(p, p, step, p, m, NULL, &ao), MT_EARG, "param and exp_avg share memory");
  CHECK(at(step, 0) == 0);
  mt_tensor_release(step);
  mt_tensor_release(m2);
  mt_tensor_release(m);
  mt_tensor_release(p);
}

/* Empty and 0-dim parameters. */
static void test_shapes(void) {
  int64_t zero = 0;
  mt_tensor *p, *g, *sum, *step;
  OK(mt_zeros(&p, MT_FLOAT32, 1, &zero));
  OK(mt_zeros(&g, MT_FLOAT32, 1, &zero));
  OK(mt_zeros(&sum, MT_FLOAT32, 1, &zero));
  OK(mt_scalar_tensor(&step, MT_FLOAT32, mt_scalar_float(0)));
  mt_adagrad_opts o = {.lr = 0.1, .eps = 1e-10};
  OK(mt_adagrad_step(p, g, step, sum, &o));
  CHECK(at(step, 0) == 1);
  mt_tensor_release(p);
  mt_tensor_release(g);
  mt_tensor_release(sum);
  OK(mt_scalar_tensor(&p, MT_FLOAT64, mt_scalar_float(1)));
  OK(mt_scalar_tensor(&g, MT_FLOAT64, mt_scalar_float(0.5)));
  OK(mt_scalar_tensor(&sum, MT_FLOAT64, mt_scalar_float(0)));
  OK(mt_adagrad_step(p, g, step, sum, &o));
  CHECK(at(sum, 0) == 0.25);
  CHECK(at(p, 0) == 1 + (-0.1 * 0.5) / (0.5 + 1e-10)); /* clr at t = 2 with lr_decay 0 */
  mt_tensor_release(p);
  mt_tensor_release(g);
  mt_tensor_release(sum);
  mt_tensor_release(step);
}

/* Bad operands fail with a message that names the problem, and change nothing. */
static void test_errors(void) {
  int64_t sz[2] = {2, 3}, six = 6, three = 3;
  mt_tensor *p, *g, *g64, *gi, *m, *v, *small, *step, *step2, *pi, *wide;
  OK(mt_full(&p, MT_FLOAT32, 2, sz, mt_scalar_float(1)));
  OK(mt_full(&g, MT_FLOAT32, 2, sz, mt_scalar_float(1)));
  OK(mt_full(&g64, MT_FLOAT64, 2, sz, mt_scalar_float(1)));
  OK(mt_full(&gi, MT_INT64, 2, sz, mt_scalar_int(1)));
  OK(mt_full(&pi, MT_INT64, 2, sz, mt_scalar_int(1)));
  OK(mt_zeros(&m, MT_FLOAT32, 2, sz));
  OK(mt_zeros(&v, MT_FLOAT32, 2, sz));
  OK(mt_zeros(&small, MT_FLOAT32, 1, &six));
  OK(mt_scalar_tensor(&step, MT_FLOAT32, mt_scalar_float(0)));
  OK(mt_zeros(&step2, MT_FLOAT32, 1, &three));
  mt_tensor *row;
  OK(mt_zeros(&row, MT_FLOAT32, 1, &three));
  int64_t big[2] = {2, -1};
  OK(mt_expand(&wide, row, 2, big));
  mt_adam_opts ao = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
  FAILS(mt_adam_step(pi, gi, step, m, v, NULL, &ao), MT_EDTYPE, "the parameter is int64; optimizers update float32 and float64");
  FAILS(mt_adam_step(p, g64, step, m, v, NULL, &ao), MT_EDTYPE, "grad is float64 but the parameter is float32");
  FAILS(mt_adam_step(p, g, step, small, v, NULL, &ao), MT_ESHAPE, "exp_avg has shape [6] but the parameter has shape [2, 3]");
  FAILS(mt_adam_step(p, g, step2, m, v, NULL, &ao), MT_ESHAPE, "the step count must hold one number, got a tensor of shape [3]");
  FAILS(mt_adam_step(p, g, NULL, m, v, NULL, &ao), MT_EARG, "the step count is missing");
  FAILS(mt_adam_step(wide, g, step, m, v, NULL, &ao), MT_EARG, "param is an expanded view");
  ao.amsgrad = true;
  FAILS(mt_adam_step(p, g, step, m, v, NULL, &ao), MT_EARG, "amsgrad needs max_exp_avg_sq");
  mt_sgd_opts so = {.lr = 0.1, .momentum = 0.5};
  FAILS(mt_sgd_step(p, g, NULL, &so), MT_EARG, "momentum is 0.5 but no momentum buffer was given");
  mt_tensor *badbuf = small;
  FAILS(mt_sgd_step(p, g, &badbuf, &so), MT_ESHAPE, "momentum_buffer has shape [6]");
  CHECK(badbuf == small);
  mt_rmsprop_opts ro = {.lr = 0.1, .alpha = 0.9, .centered = true};
  FAILS(mt_rmsprop_step(p, g, m, NULL, NULL, &ro), MT_EARG, "centered RMSprop needs grad_avg");
  ro.centered = false;
  ro.momentum = 0.9;
  FAILS(mt_rmsprop_step(p, g, m, NULL, NULL, &ro), MT_EARG, "momentum is 0.9 but no momentum_buffer was given");
  mt_adagrad_opts go = {.lr = 0.1};
  FAILS(mt_adagrad_step(p, g, step, NULL, &go), MT_EARG, "sum must not be NULL");
  FAILS(mt_adagrad_step(p, NULL, step, m, &go), MT_EARG, "must not be NULL");
  /* nothing moved */
  CHECK(at(step, 0) == 0 && at(p, 5) == 1 && at(m, 0) == 0 && at(v, 0) == 0);
  mt_tensor *all[] = {p, g, g64, gi, m, v, small, step, step2, pi, wide, row};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_tensor_release(all[i]);
}

/* A parameter of several pool chunks (3 * 32K + 5 elements) is updated on the pool: the same
 * bits with 1 and 3 threads, and the same as each element updated alone (chunk edges included). */
static void run_big(mt_dtype dt, int64_t n, int64_t first, bool adam, mt_tensor **out) {
  mt_tensor *p = vec(dt, n, false, 0), *g = vec(dt, n, false, 0), *m = vec(dt, n, false, 0), *v = vec(dt, n, false, 0),
            *vmax = vec(dt, n, false, 0), *buf = NULL, *step;
  if (mt_scalar_tensor(&step, MT_FLOAT32, mt_scalar_float(0))) abort();
  for (int64_t i = 0; i < n; i++) set(p, i, init_value((int)((first + i) % 1000)));
  for (int t = 1; t <= 3; t++) {
    for (int64_t i = 0; i < n; i++) set(g, i, grad_value(t, (int)((first + i) % 1000)));
    if (adam) {
      mt_adam_opts o = {1e-2, 0.9, 0.999, 1e-8, 1e-2, true, false, true};
      OK(mt_adam_step(p, g, step, m, v, vmax, &o));
    } else {
      mt_sgd_opts o = {0.1, 0.9, 0.0, 1e-4, true, false};
      OK(mt_sgd_step(p, g, &buf, &o));
    }
  }
  mt_tensor *all[] = {g, m, v, vmax, buf, step};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_tensor_release(all[i]);
  *out = p;
}

static void test_big_on_pool(void) {
  const int64_t n = 3 * 32768 + 5, edges[] = {0, 32767, 32768, 65535, 65536, n - 1};
  const int threads = mt_get_num_threads();
  for (int adam = 0; adam <= 1; adam++)
    for (int d = 0; d < 2; d++) {
      const mt_dtype dt = d ? MT_FLOAT64 : MT_FLOAT32;
      mt_tensor *one, *three;
      OK(mt_set_num_threads(1));
      run_big(dt, n, 0, adam, &one);
      OK(mt_set_num_threads(3));
      run_big(dt, n, 0, adam, &three);
      int bad = 0;
      for (int64_t i = 0; i < n; i++) bad += at(one, i) != at(three, i);
      CHECK(bad == 0);
      for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
        mt_tensor *alone;
        run_big(dt, 1, edges[e], adam, &alone);
        CHECK(at(alone, 0) == at(three, edges[e]));
        mt_tensor_release(alone);
      }
      mt_tensor_release(one);
      mt_tensor_release(three);
    }
  OK(mt_set_num_threads(threads));
}

int main(void) {
  test_golden();
  test_sgd_first_buffer();
  test_step_counter();
  test_aliasing();
  test_shapes();
  test_errors();
  test_big_on_pool();
  return mt_test_finish("test_optim");
}
